// A checkpoint file mapped into memory. Loaders check every size and offset against size()
// before they use a byte, then either point tensors into the mapping (fp32 already in the
// model's order: no copy at all) or convert from it once (no read into a second buffer).
//
// The mapping is private and writable (MAP_PRIVATE): a page written through it becomes this
// process's own copy, so the file on disk never changes. Rewriting the file while a model
// maps it is safe when done as kvshare does (a new file renamed over the old, OutputFile);
// truncating it in place under a running process is not.
#pragma once
#include "src/model/tensor.h"
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

class MappedFile {
public:
    // Opens and maps PATH; one clear error for a missing file, a folder or a failed map.
    static std::shared_ptr<MappedFile> open(const std::string& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const std::string& path() const { return path_; }
    size_t size() const { return size_; }
    uint8_t* data() { return data_; }
    const uint8_t* data() const { return data_; }
    // Whether [offset, offset + bytes) lies inside the file (no overflow on the way).
    bool holds(size_t offset, size_t bytes) const { return offset <= size_ && bytes <= size_ - offset; }
    // Drops this process's pages of [offset, offset + bytes) once they have been converted and
    // will not be read again (the whole pages inside the range): memory stays at about one copy.
    void release(size_t offset, size_t bytes) const;
    // A little-endian value at offset; the caller has checked holds(offset, sizeof(T)).
    template <class T> T read(size_t offset) const {
        T v;
        std::memcpy(&v, data_ + offset, sizeof v);
        return v;
    }

private:
    MappedFile() = default;
    std::string path_;
    uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

// The kind of thing at PATH: a missing path is an error naming it ("no such file or folder").
bool is_directory(const std::string& path);

// Points t at `count` floats at `offset` of the file, used in place; the caller has checked
// that they lie inside the file, and offset is a multiple of 4 (the mapping starts on a page).
void borrow_floats(Tensor& t, const std::shared_ptr<MappedFile>& file, size_t offset, size_t count);
