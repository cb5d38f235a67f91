#include "src/util.h"
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unistd.h>

void fail(const std::string& message) { throw std::runtime_error(message); }

int parse_int(const std::string& s, const std::string& what) {
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE || v < INT32_MIN || v > INT32_MAX)
        fail(what + ": '" + s + "' is not an integer");
    return (int)v;
}

float parse_float(const std::string& s, const std::string& what) {
    char* end = nullptr;
    errno = 0;
    float v = std::strtof(s.c_str(), &end);
    if (s.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
        fail(what + ": '" + s + "' is not a number");
    return v;
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::string cur;
    for (char c : s) {
        if (c == sep) { parts.push_back(cur); cur.clear(); }
        else cur += c;
    }
    parts.push_back(cur);
    return parts;
}

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

std::string read_text_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail("cannot open '" + path + "'");
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

OutputFile::OutputFile(const std::string& path) : path_(path), temp_(path + ".tmp-" + std::to_string(::getpid())) {
    f_ = std::fopen(temp_.c_str(), "wb");
    if (!f_) fail("cannot write '" + path + "': " + std::strerror(errno));
}

OutputFile::~OutputFile() {
    if (!f_) return;
    std::fclose(f_);
    std::remove(temp_.c_str());
}

void OutputFile::write(const void* data, size_t bytes) {
    if (bytes > 0 && std::fwrite(data, 1, bytes, f_) != bytes) fail("error writing '" + path_ + "': " + std::strerror(errno));
}

void OutputFile::commit() {
    const bool flushed = std::fflush(f_) == 0;
    const bool closed = std::fclose(f_) == 0;
    f_ = nullptr;
    if (!flushed || !closed || std::rename(temp_.c_str(), path_.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        std::remove(temp_.c_str());
        fail("error writing '" + path_ + "': " + why);
    }
}

void write_file_atomic(const std::string& path, const std::string& text) {
    OutputFile f(path);
    f.write(text);
    f.commit();
}

float Rng::normal() {
    float u1 = uniform(), u2 = uniform();
    if (u1 < 1e-12f) u1 = 1e-12f;
    return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
}

// xorshift's update (the three shifts of next_u32) is linear in the 64 state bits over
// GF(2): a 64 x 64 bit matrix M, stored as its columns, the images of the 64 single bits.
// Skipping k calls multiplies the state by M^k = the product of M^(2^b) over the bits b of
// k; the 64 powers M^(2^b) are made once by squaring.
namespace {
struct BitMatrix {
    uint64_t col[64];
};

uint64_t times(const BitMatrix& m, uint64_t v) {
    uint64_t out = 0;
    for (int j = 0; j < 64; j++)
        if ((v >> j) & 1) out ^= m.col[j];
    return out;
}

const std::vector<BitMatrix>& xorshift_powers() {  // [b] = M^(2^b)
    static const std::vector<BitMatrix> powers = [] {
        std::vector<BitMatrix> p(64);
        for (int j = 0; j < 64; j++) {
            uint64_t s = 1ull << j;
            s ^= s >> 12; s ^= s << 25; s ^= s >> 27;  // next_u32's update
            p[0].col[j] = s;
        }
        for (int b = 1; b < 64; b++)
            for (int j = 0; j < 64; j++) p[b].col[j] = times(p[b - 1], times(p[b - 1], 1ull << j));
        return p;
    }();
    return powers;
}
}  // namespace

void Rng::skip(uint64_t calls) {
    const std::vector<BitMatrix>& powers = xorshift_powers();
    for (int b = 0; b < 64; b++)
        if ((calls >> b) & 1) state = times(powers[b], state);
}

double now_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string format_bytes(double b) {
    char buf[64];
    if (b >= 1e9) std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
    else if (b >= 1e6) std::snprintf(buf, sizeof buf, "%.2f MB", b / 1e6);
    else if (b >= 1e3) std::snprintf(buf, sizeof buf, "%.1f KB", b / 1e3);
    else std::snprintf(buf, sizeof buf, "%.0f B", b);
    return buf;
}
