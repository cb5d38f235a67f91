// A checkpoint file opened for reading: every short read is "truncated" (shared by the
// formats' readers; writers use OutputFile, src/util.h).
#pragma once
#include "src/util.h"
#include <cstdio>
#include <string>

struct File {
    FILE* f = nullptr;
    std::string path;
    explicit File(const std::string& p) : path(p) {
        f = std::fopen(p.c_str(), "rb");
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
    void skip(size_t bytes) {
        if (std::fseek(f, (long)bytes, SEEK_CUR) != 0) fail("'" + path + "' is truncated");
    }
};
