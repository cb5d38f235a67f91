#include "src/formats/mapped_file.h"
#include "src/util.h"
#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) fail("cannot open '" + path + "': " + std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        const bool folder = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
        ::close(fd);
        fail("cannot open '" + path + "': " + (folder ? "it is a folder" : "not a regular file"));
    }
    std::shared_ptr<MappedFile> f(new MappedFile());
    f->path_ = path;
    f->size_ = (size_t)st.st_size;
    if (f->size_ > 0) {
        void* p = mmap(nullptr, f->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            const std::string why = std::strerror(errno);
            ::close(fd);
            fail("cannot map '" + path + "' into memory: " + why);
        }
        f->data_ = (uint8_t*)p;
    }
    ::close(fd);  // the mapping keeps the file
    return f;
}

MappedFile::~MappedFile() {
    if (data_) munmap(data_, size_);
}

void MappedFile::release(size_t offset, size_t bytes) const {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t first = (offset + page - 1) / page * page, last = (offset + bytes) / page * page;
    if (data_ && last > first && last <= size_) madvise(data_ + first, last - first, MADV_DONTNEED);
}

bool is_directory(const std::string& path) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) fail("cannot open '" + path + "': " + std::strerror(errno));
    return S_ISDIR(st.st_mode);
}

void borrow_floats(Tensor& t, const std::shared_ptr<MappedFile>& file, size_t offset, size_t count) {
    if (offset % alignof(float) != 0 || !file->holds(offset, count * sizeof(float)))
        fail("internal: tensor at byte " + std::to_string(offset) + " of '" + file->path() + "' is misplaced");
    t.borrow(reinterpret_cast<float*>(file->data() + offset), count, file);
}
