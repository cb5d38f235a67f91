// Small helpers shared by everything: errors, parsing, a seeded RNG, timing.
#pragma once
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

// Every user-facing error is a std::runtime_error; main() prints it as one line.
[[noreturn]] void fail(const std::string& message);

// Strict integer / float parsing: the whole string must be a number in range.
int parse_int(const std::string& s, const std::string& what);
float parse_float(const std::string& s, const std::string& what);
std::vector<std::string> split(const std::string& s, char sep);
bool starts_with(const std::string& s, const std::string& prefix);
std::string read_text_file(const std::string& path);

// A file written all or nothing: bytes go to a temporary file beside PATH, and commit()
// renames it over PATH. Without commit() (an error on the way) the temporary file is
// removed, so a failed command leaves an existing PATH as it was.
class OutputFile {
public:
    explicit OutputFile(const std::string& path);
    ~OutputFile();
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;
    void write(const void* data, size_t bytes);
    void write(const std::string& text) { write(text.data(), text.size()); }
    void commit();
    const std::string& path() const { return path_; }
private:
    std::string path_, temp_;
    std::FILE* f_ = nullptr;
};
// The whole text to PATH through an OutputFile.
void write_file_atomic(const std::string& path, const std::string& text);

// xorshift64* random numbers: deterministic across machines for a given seed.
struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {
        if (state == 0) state = 1;
    }
    uint32_t next_u32() {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
        return (uint32_t)((state * 0x2545F4914F6CDD1Dull) >> 32);
    }
    float uniform() { return (next_u32() >> 8) / 16777216.0f; }   // [0, 1)
    float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
    float normal();                                                 // N(0, 1), Box-Muller
    // Moves on as `calls` calls of next_u32 would, in at most 64 small steps instead of
    // `calls`, so that threads can each start at their own place in one stream.
    void skip(uint64_t calls);
};

double now_seconds();
std::string format_bytes(double bytes);
