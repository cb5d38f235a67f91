// Small helpers shared by everything: errors, parsing, a seeded RNG, timing.
#pragma once
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

// Every user-facing error is a std::runtime_error; main() prints it as one line.
[[noreturn]] void fail(const std::string& message);

// Strict integer / float parsing: the whole string must be a number (a NUL byte, a space,
// hex or a trailing word make it "not an integer" / "not a number").
int parse_int(const std::string& s, const std::string& what);
float parse_float(const std::string& s, const std::string& what);
// The same, within [lo, hi]: "WHAT must be lo..hi, got S". Every numeric flag has a range
// (src/commands/args.h), and its --help states it. A float too small for a float (1e-45)
// is that tiny number, not an error; one too large for a float is out of range.
int parse_int_in(const std::string& s, const std::string& what, int lo, int hi);
float parse_float_in(const std::string& s, const std::string& what, float lo, float hi);
// s with control bytes and non-ASCII as \xNN and at most `max` bytes kept, for messages
// (what() is a C string: a NUL byte in a value would cut the message short).
std::string printable(const std::string& s, size_t max = 80);
std::vector<std::string> split(const std::string& s, char sep);
bool starts_with(const std::string& s, const std::string& prefix);

// Input and output paths, checked before any work, with what is wrong in the message:
// "WHAT 'PATH': no such file", "... is a directory", the system's reason otherwise.
// A directory is accepted when directory_ok (a MODEL may be a Hugging Face folder).
void check_input_file(const std::string& path, const std::string& what, bool directory_ok = false);
// An output path must not be a directory, and its folder must exist.
void check_output_file(const std::string& path, const std::string& what);
// Bytes of a file check_input_file accepted.
size_t file_size(const std::string& path);
// The whole file; at most max_bytes (else an error naming the size), checked first.
std::string read_text_file(const std::string& path, const std::string& what = "file",
                           size_t max_bytes = (size_t)1 << 40);

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
