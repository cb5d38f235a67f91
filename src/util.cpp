#include "src/util.h"
#include <cctype>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

void fail(const std::string& message) { throw std::runtime_error(message); }

std::string printable(const std::string& s, size_t max) {
    std::string out;
    for (size_t i = 0; i < s.size() && i < max; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c >= 32 && c < 127) {
            out += (char)c;
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        }
    }
    if (s.size() > max) out += "...";
    return out;
}

// strtol and strtof stop at a NUL byte, so the end must be the string's own end; strtof
// also reads hex floats ("0x10" = 16), which no one means on a command line.
static bool parsed_whole(const std::string& s, const char* end) {
    return !s.empty() && end == s.c_str() + s.size() && !std::isspace((unsigned char)s[0]) &&
           s.find_first_of("xX") == std::string::npos;
}

int parse_int(const std::string& s, const std::string& what) {
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(s.c_str(), &end, 10);
    if (!parsed_whole(s, end)) fail(what + ": '" + printable(s) + "' is not an integer");
    if (errno == ERANGE || v < INT32_MIN || v > INT32_MAX)
        fail(what + ": '" + printable(s) + "' is out of range for an integer");
    return (int)v;
}

float parse_float(const std::string& s, const std::string& what) {
    char* end = nullptr;
    errno = 0;
    float v = std::strtof(s.c_str(), &end);
    if (!parsed_whole(s, end) || std::isnan(v)) fail(what + ": '" + printable(s) + "' is not a number");
    // ERANGE on underflow returns the nearest tiny value, which is the number asked for
    if (!std::isfinite(v) || (errno == ERANGE && std::fabs(v) > 1.0f))
        fail(what + ": '" + printable(s) + "' is out of range for a float");
    return v;
}

static std::string float_text(float x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", x);
    return buf;
}

int parse_int_in(const std::string& s, const std::string& what, int lo, int hi) {
    const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(s.c_str(), &end, 10);
    if (!parsed_whole(s, end)) fail(what + ": '" + printable(s) + "' is not an integer (allowed: " + range + ")");
    if (errno == ERANGE || v < lo || v > hi) fail(what + " must be " + range + ", got " + printable(s));
    return (int)v;
}

float parse_float_in(const std::string& s, const std::string& what, float lo, float hi) {
    const std::string range = float_text(lo) + ".." + float_text(hi);
    char* end = nullptr;
    errno = 0;
    float v = std::strtof(s.c_str(), &end);
    if (!parsed_whole(s, end) || std::isnan(v)) fail(what + ": '" + printable(s) + "' is not a number (allowed: " + range + ")");
    if (!std::isfinite(v) || (errno == ERANGE && std::fabs(v) > 1.0f) || v < lo || v > hi)
        fail(what + " must be " + range + ", got " + printable(s));
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

void check_input_file(const std::string& path, const std::string& what, bool directory_ok) {
    struct stat st;
    if (path.empty()) fail(what + ": the path is empty");
    if (stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) fail(what + " '" + path + "': no such file");
        fail(what + " '" + path + "': " + std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode) && !directory_ok) fail(what + " '" + path + "' is a directory, not a file");
    if (access(path.c_str(), R_OK) != 0) fail(what + " '" + path + "': " + std::strerror(errno));
}

void check_output_file(const std::string& path, const std::string& what) {
    struct stat st;
    if (path.empty()) fail(what + ": the path is empty");
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) fail(what + " '" + path + "' is a directory, not a file");
    const size_t slash = path.find_last_of('/');
    const std::string folder = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    if (stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        fail(what + " '" + path + "': the folder '" + folder + "' does not exist");
    if (access(folder.c_str(), W_OK) != 0) fail(what + " '" + path + "': cannot write in '" + folder + "': " + std::strerror(errno));
}

size_t file_size(const std::string& path) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) fail("cannot read '" + path + "': " + std::strerror(errno));
    return (size_t)st.st_size;
}

std::string read_text_file(const std::string& path, const std::string& what, size_t max_bytes) {
    check_input_file(path, what);
    std::ifstream f(path, std::ios::binary);
    if (!f) fail("cannot open " + what + " '" + path + "'");
    // the size first; a pipe or a device (<(kvshare stories 400), /dev/zero) has none, and is
    // read as it comes, up to 1 GiB
    struct stat st;
    if (stat(path.c_str(), &st) != 0) fail("cannot read " + what + " '" + path + "': " + std::strerror(errno));
    const size_t size = S_ISREG(st.st_mode) ? (size_t)st.st_size : 0;
    if (!S_ISREG(st.st_mode)) max_bytes = std::min(max_bytes, (size_t)1 << 30);
    if (size > max_bytes)
        fail(what + " '" + path + "' has " + std::to_string(size) + " bytes, more than the " + std::to_string(max_bytes) + " allowed");
    std::string text;
    text.reserve(size);
    char buf[1 << 16];
    while (f.read(buf, sizeof buf) || f.gcount() > 0) {
        if (text.size() + (size_t)f.gcount() > max_bytes)
            fail(what + " '" + path + "' holds more than the " + std::to_string(max_bytes) + " bytes allowed");
        text.append(buf, (size_t)f.gcount());
    }
    if (f.bad()) fail("error reading " + what + " '" + path + "'");
    return text;
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
