// A checkpoint file opened for reading or writing: every short read is "truncated", every
// failed write an error naming the file (shared by the formats' readers and writers).
#pragma once
#include "src/util.h"
#include <cstdio>
#include <string>

struct File {
    FILE* f = nullptr;
    std::string path;
    File(const std::string& p, const char* mode) : path(p) {
        f = std::fopen(p.c_str(), mode);
        if (!f) fail("cannot open '" + p + "'");
    }
    ~File() { if (f) std::fclose(f); }
    size_t size() {
        std::fseek(f, 0, SEEK_END);
        long n = std::ftell(f);
        std::fseek(f, 0, SEEK_SET);
        return n < 0 ? 0 : (size_t)n;
    }
    void read(void* dst, size_t bytes) {
        if (std::fread(dst, 1, bytes, f) != bytes) fail("'" + path + "' is truncated");
    }
    void write(const void* src, size_t bytes) {
        if (std::fwrite(src, 1, bytes, f) != bytes) fail("error writing '" + path + "'");
    }
    void skip(size_t bytes) {
        if (std::fseek(f, (long)bytes, SEEK_CUR) != 0) fail("'" + path + "' is truncated");
    }
};
