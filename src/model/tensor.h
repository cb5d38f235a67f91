// The floats of one weight tensor, flattened row-major. A tensor either owns its floats
// (models made or trained here, or converted from a file) or borrows them from a checkpoint
// mapped into memory (a file whose bytes are already fp32 in the order the model uses), so
// that loading a large file does not read it into a second copy. Every consumer sees one
// interface either way: data(), size(), indexing and iteration, as with a std::vector.
//
// Copying always makes an owned copy, so a copy never aliases a file; moving keeps what the
// tensor is. A borrowed tensor may be written: the mapping is private (MAP_PRIVATE), so a
// written page becomes this process's own and the file on disk never changes.
#pragma once
#include <algorithm>
#include <cstddef>
#include <memory>

class Tensor {
public:
    Tensor() = default;
    Tensor(const Tensor& other) { copy_from(other); }
    Tensor& operator=(const Tensor& other) {
        if (this != &other) copy_from(other);
        return *this;
    }
    Tensor(Tensor&& other) noexcept { take(other); }
    Tensor& operator=(Tensor&& other) noexcept {
        if (this != &other) take(other);
        return *this;
    }

    // n floats, all equal to value (as std::vector::assign).
    void assign(size_t n, float value) {
        allocate(n);
        std::fill(data_, data_ + n, value);
    }
    // n floats left unset: for a loader that writes every one of them next (no zero fill).
    void allocate(size_t n) {
        owned_.reset(n ? new float[n] : nullptr);
        data_ = owned_.get();
        size_ = n;
        keep_.reset();
    }
    // n floats at `data`, inside a mapping that `keep` holds open as long as this tensor lives.
    void borrow(float* data, size_t n, std::shared_ptr<void> keep) {
        owned_.reset();
        data_ = n ? data : nullptr;
        size_ = n;
        keep_ = std::move(keep);
    }
    bool borrowed() const { return keep_ != nullptr; }

    float* data() { return data_; }
    const float* data() const { return data_; }
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    float& operator[](size_t i) { return data_[i]; }
    const float& operator[](size_t i) const { return data_[i]; }
    float* begin() { return data_; }
    float* end() { return data_ + size_; }
    const float* begin() const { return data_; }
    const float* end() const { return data_ + size_; }
    // Element-wise, as std::vector's: the same size and every float equal.
    bool operator==(const Tensor& o) const { return size_ == o.size_ && std::equal(begin(), end(), o.begin()); }
    bool operator!=(const Tensor& o) const { return !(*this == o); }

private:
    void copy_from(const Tensor& other) {
        allocate(other.size_);
        std::copy(other.begin(), other.end(), data_);
    }
    void take(Tensor& other) {
        owned_ = std::move(other.owned_);
        keep_ = std::move(other.keep_);
        data_ = other.data_;
        size_ = other.size_;
        other.data_ = nullptr;
        other.size_ = 0;
    }

    std::unique_ptr<float[]> owned_;  // the floats when owned
    std::shared_ptr<void> keep_;      // the mapping a borrowed tensor points into
    float* data_ = nullptr;
    size_t size_ = 0;
};
