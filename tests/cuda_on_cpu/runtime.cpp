// The CPU emulator's runtime (what it models and what not: cuda_runtime.h here): the block
// scheduler that runs a block's threads as fibers between barriers, the launch checks, and
// the runtime API over malloc'd "device" memory.
#include <cuda_runtime.h>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define KVS_EMU_ASAN 1
#endif

// x86-64 switches fibers with a few instructions of our own; elsewhere (or with
// -DKVS_EMU_UCONTEXT) with swapcontext, which also saves the signal mask: a system call per
// switch, and the tests switch hundreds of millions of times.
#if defined(__x86_64__) && !defined(KVS_EMU_UCONTEXT)
#define KVS_EMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

namespace kvs_emu {
uint3 thread_idx, block_idx;
dim3 block_dim, grid_dim;
}  // namespace kvs_emu

const uint3& threadIdx = kvs_emu::thread_idx;
const uint3& blockIdx = kvs_emu::block_idx;
const dim3& blockDim = kvs_emu::block_dim;
const dim3& gridDim = kvs_emu::grid_dim;

namespace kvs_emu {
namespace {

// ---------------------------------------------------------------------------------------
// settings: KVS_EMU_ORDER=forward|reverse|random, KVS_EMU_SEED=n

enum class Order { Forward, Reverse, Random };

struct Settings {
    Order order = Order::Forward;
    uint64_t seed = 1;
};

const Settings& settings() {
    static const Settings s = [] {
        Settings r;
        const char* order = std::getenv("KVS_EMU_ORDER");
        const std::string o = order ? order : "forward";
        if (o == "forward") r.order = Order::Forward;
        else if (o == "reverse") r.order = Order::Reverse;
        else if (o == "random") r.order = Order::Random;
        else {
            std::fprintf(stderr, "kvs_emu: KVS_EMU_ORDER=%s: use forward, reverse or random\n", o.c_str());
            std::exit(2);
        }
        if (const char* seed = std::getenv("KVS_EMU_SEED")) r.seed = std::strtoull(seed, nullptr, 10);
        if (r.order == Order::Random)
            std::fprintf(stderr, "kvs_emu: threads and blocks run in random order, KVS_EMU_SEED=%llu\n",
                         (unsigned long long)r.seed);
        return r;
    }();
    return s;
}

uint64_t next_random() {  // xorshift64*, one stream for the whole run
    static uint64_t state = settings().seed * 0x9E3779B97F4A7C15ull + 1;
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Dull;
}

// 0, 1, ..., n-1 in the order of the settings.
void fill_order(std::vector<int>& order, int n) {
    order.resize(n);
    for (int i = 0; i < n; i++) order[i] = i;
    switch (settings().order) {
        case Order::Forward: break;
        case Order::Reverse: std::reverse(order.begin(), order.end()); break;
        case Order::Random:
            for (int i = n - 1; i > 0; i--) std::swap(order[i], order[(int)(next_random() % (uint64_t)(i + 1))]);
            break;
    }
}

// ---------------------------------------------------------------------------------------
// fibers: one per thread of the largest block so far, reused by every block

constexpr size_t STACK_BYTES = 256 * 1024;  // address space only; a kernel touches a few KiB
constexpr size_t GUARD_BYTES = 4096;        // an overflow faults instead of corrupting a neighbour

struct Fiber {
    char* stack = nullptr;  // usable part, above the guard page
#if KVS_EMU_ASM_SWITCH
    void* sp = nullptr;  // saved stack pointer while switched out
#else
    ucontext_t context;
#endif
    void* asan_fake_stack = nullptr;
    Fiber() = default;
    Fiber(const Fiber&) = delete;
    Fiber& operator=(const Fiber&) = delete;
    ~Fiber() {  // only after a trap, which leaves fibers in the middle of a kernel
        if (!stack) return;
#if defined(__SANITIZE_ADDRESS__)
        __asan_unpoison_memory_region(stack, STACK_BYTES);  // the frames it left behind
#endif
        munmap(stack - GUARD_BYTES, STACK_BYTES + GUARD_BYTES);
    }
};

#if KVS_EMU_ASM_SWITCH
// kvs_emu_switch(&save, to): pushes the callee-saved registers on this stack, saves the
// stack pointer in *save, loads `to` and pops the same from there. MXCSR and the x87
// control word are left alone: every fiber runs kernels in the one floating-point
// environment of the test process.
extern "C" void kvs_emu_switch(void** save, void* to);
asm(R"(
    .text
    .p2align 4
    .type kvs_emu_switch, @function
kvs_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size kvs_emu_switch, .-kvs_emu_switch
)");
void* scheduler_sp = nullptr;
#else
ucontext_t scheduler_context;
#endif

void fiber_main();

std::unique_ptr<Fiber> make_fiber() {
    auto f = std::make_unique<Fiber>();
    void* mem = mmap(nullptr, STACK_BYTES + GUARD_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        std::perror("kvs_emu: mmap of a fiber stack");
        std::abort();
    }
    mprotect(mem, GUARD_BYTES, PROT_NONE);
    f->stack = static_cast<char*>(mem) + GUARD_BYTES;
#if KVS_EMU_ASM_SWITCH
    // What kvs_emu_switch pops: six registers, then `ret` enters fiber_main with the stack
    // aligned as after a call (a zero return address above it).
    uint64_t* top = reinterpret_cast<uint64_t*>(f->stack + STACK_BYTES);
    uint64_t* sp = top - 8;
    for (int i = 0; i < 6; i++) sp[i] = 0;
    sp[6] = reinterpret_cast<uint64_t>(&fiber_main);
    sp[7] = 0;
    f->sp = sp;
#else
    getcontext(&f->context);
    f->context.uc_stack.ss_sp = f->stack;
    f->context.uc_stack.ss_size = STACK_BYTES;
    f->context.uc_link = nullptr;
    makecontext(&f->context, &fiber_main, 0);
#endif
    return f;
}

// ---------------------------------------------------------------------------------------
// the block being run
//
// The warps of a block run one after another, each until all its lanes have exited or wait
// at __syncthreads; then the barrier completes and they run again. Inside a warp the lanes
// run in rounds: each runs until it waits at a shuffle, switching straight to the next lane
// of the round; when the last has posted its value the exchange completes and the next
// round starts. The scheduler's stack is only returned to when a warp can go no further.

enum class Wait { Ready, Barrier, Warp, Done };

// A cp.async copy issued and not yet waited for (async_copy).
struct PendingCopy {
    void* dst;
    const void* src;
    int bytes;
    bool valid;  // false: zeros
    int group;   // the commit group it belongs to (0, 1, ...)
    bool landed;  // already copied (it lands early in reverse order), but not waited for yet
};

struct ThreadState {
    Wait wait = Wait::Ready;
    const char* file = nullptr;  // where it waits
    int line = 0;
    // a warp exchange
    Shuffle kind = Shuffle::Index;
    unsigned mask = 0;
    int arg = 0, width = 0;
    uint64_t value = 0, result = 0;
    // cp.async: copies in flight, oldest first, and the groups committed so far
    std::vector<PendingCopy> copies;
    int groups = 0;
};

struct Block {
    const LaunchConfig* config = nullptr;  // null outside a launch
    void (*body)(const void*) = nullptr;
    const void* args = nullptr;
    int threads = 0;
    std::vector<ThreadState> state;
    std::vector<uint3> index;  // threadIdx of each thread
    std::vector<std::unique_ptr<Fiber>> fibers;
    int running = -1;             // thread whose fiber runs, -1 in the scheduler
    bool from_scheduler = false;  // whether the last switch left the scheduler's stack
    std::vector<int> warp_order;
    // the warp being run: its first thread, lanes, and the round's lane order
    int warp_base = 0, warp_lanes = 0, cursor = 0;
    std::vector<int> lane_order;
    // shared memory
    std::vector<std::pair<const void*, size_t>> shared_arrays;  // refilled in this block
    size_t static_smem = 0;
    void* dynamic_smem = nullptr;
    bool smem_checked = false;
    bool trapped = false;  // a thread reached __trap: the launch is over
};

Block g;

// AddressSanitizer must be told about every switch between stacks, or it takes the other
// stack's frames for overflows (the fiber annotations of sanitizer/common_interface_defs.h).
#if KVS_EMU_ASAN
const void* scheduler_stack_bottom = nullptr;
size_t scheduler_stack_size = 0;
#endif

// On the stack just switched to: tells AddressSanitizer, and learns the scheduler's stack
// the first time a fiber is entered from it.
void arrived(void* fake_stack) {
#if KVS_EMU_ASAN
    const void* bottom = nullptr;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(fake_stack, &bottom, &size);
    if (g.from_scheduler && g.running >= 0) {
        scheduler_stack_bottom = bottom;
        scheduler_stack_size = size;
    }
#else
    (void)fake_stack;
#endif
}

// Leaves the running stack (fiber `from`, or the scheduler's when null) for `to` (or the
// scheduler's when null); returns when something switches back.
void switch_stacks(Fiber* from, Fiber* to) {
    void* scheduler_fake = nullptr;
    void** fake = from ? &from->asan_fake_stack : &scheduler_fake;
#if KVS_EMU_ASAN
    __sanitizer_start_switch_fiber(fake, to ? to->stack : scheduler_stack_bottom, to ? STACK_BYTES : scheduler_stack_size);
#endif
    g.from_scheduler = from == nullptr;
#if KVS_EMU_ASM_SWITCH
    kvs_emu_switch(from ? &from->sp : &scheduler_sp, to ? to->sp : scheduler_sp);
#else
    swapcontext(from ? &from->context : &scheduler_context, to ? &to->context : &scheduler_context);
#endif
    arrived(*fake);
}

[[noreturn]] void kernel_failure(const char* fmt, ...) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nkvs_emu: kernel %s (launched at %s:%d), block (%u,%u,%u): ", g.config->name, g.config->file,
                 g.config->line, block_idx.x, block_idx.y, block_idx.z);
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "\n");
    std::fflush(stderr);
    std::abort();
}

ThreadState& running_thread(const char* what) {
    if (g.running < 0) {
        std::fprintf(stderr, "kvs_emu: %s outside a kernel\n", what);
        std::abort();
    }
    return g.state[g.running];
}

const char* wait_name(const ThreadState& s) {
    switch (s.wait) {
        case Wait::Ready: return "running";
        case Wait::Barrier: return "waiting at __syncthreads";
        case Wait::Warp: return "waiting at a warp shuffle";
        case Wait::Done: return "exited";
    }
    return "?";
}

std::string describe(int t) {
    const uint3 i = g.index[t];
    const ThreadState& s = g.state[t];
    std::string where = s.wait == Wait::Barrier || s.wait == Wait::Warp
                            ? std::string(" at ") + s.file + ":" + std::to_string(s.line)
                            : "";
    return "thread (" + std::to_string(i.x) + "," + std::to_string(i.y) + "," + std::to_string(i.z) + ") " +
           wait_name(s) + where;
}

unsigned lanes_mask(int lanes) { return lanes == 32 ? 0xffffffffu : (1u << lanes) - 1; }

int source_lane(const ThreadState& s, int lane) {
    const int w = s.width, base = lane & ~(w - 1);
    switch (s.kind) {
        case Shuffle::Index: return base + (s.arg & (w - 1));
        case Shuffle::Xor: {
            const int src = lane ^ s.arg;
            return (src & ~(w - 1)) == base ? src : lane;  // outside the segment: its own value
        }
        case Shuffle::Up: return lane - s.arg >= base ? lane - s.arg : lane;
        case Shuffle::Down: return lane + s.arg < base + w ? lane + s.arg : lane;
    }
    return lane;
}

// At the end of a round of the current warp: completes its exchange if every lane waits at
// a shuffle; false if none does. Some lanes at a shuffle and others elsewhere (exited, at
// __syncthreads) can never complete.
bool complete_shuffle() {
    const int w0 = g.warp_base, lanes = g.warp_lanes;
    const ThreadState& first = g.state[w0];
    int waiting = 0, at = -1, other = -1;
    bool same = true;
    for (int l = 0; l < lanes; l++) {
        const ThreadState& s = g.state[w0 + l];
        if (s.wait != Wait::Warp) {
            other = w0 + l;
            continue;
        }
        waiting++;
        at = w0 + l;
        same = same && s.kind == first.kind && s.mask == first.mask && s.width == first.width;
    }
    if (waiting == 0) return false;
    if (waiting < lanes)
        kernel_failure("warp %d: %d of its %d lanes wait at a shuffle, the others never get there (%s; %s)", w0 / 32,
                       waiting, lanes, describe(at).c_str(), describe(other).c_str());
    if (!same) {
        for (int l = 1; l < lanes; l++) {
            const ThreadState& s = g.state[w0 + l];
            if (s.kind != first.kind || s.mask != first.mask || s.width != first.width)
                kernel_failure("warp %d: lanes wait at different shuffles (%s; %s)", w0 / 32, describe(w0).c_str(),
                               describe(w0 + l).c_str());
        }
    }
    if (first.mask != lanes_mask(lanes))
        kernel_failure("warp %d has %d lanes and shuffles with mask 0x%08x at %s:%d: %s", w0 / 32, lanes, first.mask,
                       first.file, first.line,
                       lanes < 32 ? "lanes that do not exist (the block is not a whole number of warps)"
                                  : "only masks naming every lane are emulated");
    if (first.width < 1 || first.width > 32 || (first.width & (first.width - 1)) != 0)
        kernel_failure("shuffle width %d at %s:%d is not a power of two up to 32", first.width, first.file, first.line);
    for (int l = 0; l < lanes; l++) {
        ThreadState& s = g.state[w0 + l];
        const int src = source_lane(s, l);
        s.result = src < lanes ? g.state[w0 + src].value : s.value;
        s.wait = Wait::Ready;
    }
    return true;
}

// A new round of the current warp; lanes run in the order of the settings (a new random
// order every round).
void start_round() {
    g.cursor = 0;
    if (settings().order == Order::Random) fill_order(g.lane_order, g.warp_lanes);
}

// The next thread of the current warp to run, or -1 when every lane has exited or waits at
// __syncthreads.
int next_in_warp() {
    for (;;) {
        while (g.cursor < g.warp_lanes) {
            const int t = g.warp_base + g.lane_order[g.cursor++];
            if (g.state[t].wait == Wait::Ready) return t;
        }
        if (!complete_shuffle()) return -1;
        start_round();
    }
}

// From the running thread, which now waits or has exited, to the next one of its warp, or
// back to the scheduler.
void suspend() {
    const int self = g.running;
    const int next = next_in_warp();
    if (next == self) return;  // the only lane ready: it runs on
    Fiber* from = g.fibers[self].get();
    g.running = next;
    if (next >= 0) {
        thread_idx = g.index[next];
        switch_stacks(from, g.fibers[next].get());
    } else {
        switch_stacks(from, nullptr);
    }
}

// Runs the threads of blocks, one after another; never returns. Between two threads it
// waits in suspend, so its stack frame stays live for AddressSanitizer.
void fiber_main() {
    arrived(nullptr);
    for (;;) {
        g.body(g.args);
        const ThreadState& s = g.state[g.running];
        if (!s.copies.empty())
            kernel_failure("thread (%u,%u,%u) ends with %zu cp.async copies it never waited for (cp.async.wait_group): "
                           "they may land in shared memory the next block already uses",
                           thread_idx.x, thread_idx.y, thread_idx.z, s.copies.size());
        g.state[g.running].wait = Wait::Done;
        suspend();
    }
}

// Runs warp w until all its lanes have exited or wait at __syncthreads.
void run_warp(int w) {
    g.warp_base = w * 32;
    g.warp_lanes = std::min(32, g.threads - g.warp_base);
    fill_order(g.lane_order, g.warp_lanes);
    start_round();
    const int t = next_in_warp();
    if (t < 0) return;
    g.running = t;
    thread_idx = g.index[t];
    switch_stacks(nullptr, g.fibers[t].get());
    g.running = -1;
}

// Every live thread waits at __syncthreads: release them, unless the barrier can never
// complete (some threads exited) or they wait at different ones.
void complete_barrier() {
    int exited = -1, waiting = -1;
    for (int t = 0; t < g.threads; t++) (g.state[t].wait == Wait::Done ? exited : waiting) = t;
    if (waiting < 0) return;
    if (exited >= 0)
        kernel_failure("__syncthreads can never complete: %s, but %s", describe(waiting).c_str(), describe(exited).c_str());
    const ThreadState& w = g.state[waiting];
    for (int t = 0; t < g.threads; t++) {
        ThreadState& s = g.state[t];
        if (s.line != w.line || std::strcmp(s.file, w.file) != 0)
            kernel_failure("threads wait at different __syncthreads (%s; %s)", describe(t).c_str(), describe(waiting).c_str());
    }
    for (int t = 0; t < g.threads; t++) g.state[t].wait = Wait::Ready;
}

bool all_done() {
    for (int t = 0; t < g.threads; t++)
        if (g.state[t].wait != Wait::Done) return false;
    return true;
}

size_t shared_memory_limit(const void* kernel);  // below, with cudaFuncSetAttribute

void run_block(const uint3& b) {
    block_idx = b;
    g.shared_arrays.clear();
    g.static_smem = 0;
    if (g.config->dynamic_smem > 0) std::memset(g.dynamic_smem, 0xFF, g.config->dynamic_smem);
    for (int t = 0; t < g.threads; t++) g.state[t] = ThreadState{};
    const int warps = (g.threads + 31) / 32;
    for (;;) {
        fill_order(g.warp_order, warps);
        for (int w : g.warp_order) {
            run_warp(w);
            if (g.trapped) return;
        }
        if (all_done()) break;
        complete_barrier();
    }
    if (!g.smem_checked) {  // the static part is known once a block has declared its arrays
        g.smem_checked = true;
        const size_t total = g.static_smem + g.config->dynamic_smem, limit = shared_memory_limit(g.config->kernel);
        if (total > limit)
            kernel_failure("%zu bytes of static and %zu of dynamic shared memory, over the %zu a block may have: the "
                           "launch fails on a GPU",
                           g.static_smem, g.config->dynamic_smem, limit);
    }
}

#if !KVS_EMU_ASAN
// A fault inside a kernel (outside AddressSanitizer, which reports its own) says where.
void on_fault(int sig) {
    if (g.config && g.running >= 0) {
        char msg[512];
        const int n = std::snprintf(msg, sizeof msg,
                                    "\nkvs_emu: signal %d in kernel %s (launched at %s:%d), block (%u,%u,%u), thread "
                                    "(%u,%u,%u): an out-of-bounds or misaligned access, or a fiber stack overflow\n",
                                    sig, g.config->name, g.config->file, g.config->line, block_idx.x, block_idx.y,
                                    block_idx.z, thread_idx.x, thread_idx.y, thread_idx.z);
        if (n > 0) (void)!write(2, msg, std::min((size_t)n, sizeof msg - 1));
    }
    std::signal(sig, SIG_DFL);  // the fault repeats and ends the process as it would have
}
#endif

// Installed before main, so that Catch2, which installs its own for each test case, hands
// the fault on to this one once it has reported the test case.
void install_fault_handler() {
#if !KVS_EMU_ASAN
    static std::vector<char> alt(64 * 1024);  // a fiber's stack may be the one that overflowed
    stack_t ss{};
    ss.ss_sp = alt.data();
    ss.ss_size = alt.size();
    sigaltstack(&ss, nullptr);
    struct sigaction sa {};
    sa.sa_handler = on_fault;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
#endif
}

const bool fault_handler_installed = (install_fault_handler(), true);

// ---------------------------------------------------------------------------------------
// errors and device memory

cudaError_t last_error = cudaSuccess;
cudaError_t pending_fault = cudaSuccess;  // a trapped kernel's, until something waits

cudaError_t fail(cudaError_t err) {
    last_error = err;
    return err;
}

cudaError_t fail(cudaError_t err, const char* fmt, ...) {  // with a line on stderr saying why
    std::fprintf(stderr, "kvs_emu: ");
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "\n");
    return fail(err);
}

// The calls that wait for the device report a trapped kernel's fault, once (not again by
// cudaGetLastError, as it would on a GPU, where the error never goes away).
cudaError_t wait_for_device() {
    const cudaError_t e = pending_fault;
    pending_fault = cudaSuccess;
    return e;
}

constexpr size_t DEVICE_BYTES = (size_t)16 << 30;  // what cudaMemGetInfo reports as total
constexpr int SM_COUNT = 4;                         // few: grid-stride loops run several rounds
constexpr size_t DEFAULT_SMEM = 48 * 1024, OPTIN_SMEM = 227 * 1024;

std::map<uintptr_t, size_t>& allocations() {  // start -> bytes
    static std::map<uintptr_t, size_t> m;
    return m;
}
size_t allocated_bytes = 0;

// Is [p, p + bytes) inside one allocation?
bool on_device(const void* p, size_t bytes) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = allocations().upper_bound(a);
    if (it == allocations().begin()) return false;
    --it;
    return a >= it->first && a - it->first <= it->second && bytes <= it->second - (a - it->first);
}

// The device side of a copy of `rows` rows of `width` bytes, `pitch` apart.
bool device_rows(const void* p, size_t pitch, size_t width, size_t rows) {
    if (rows == 0 || width == 0) return true;
    return pitch >= width && on_device(p, (rows - 1) * pitch + width);
}

bool device_side(cudaMemcpyKind kind, bool dst) {
    switch (kind) {
        case cudaMemcpyHostToDevice: return dst;
        case cudaMemcpyDeviceToHost: return !dst;
        case cudaMemcpyDeviceToDevice: return true;
        default: return false;
    }
}

// Checks a copy of `height` rows of `width` bytes (and resolves cudaMemcpyDefault).
cudaError_t check_copy_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                          cudaMemcpyKind& kind, const char* what) {
    if (kind == cudaMemcpyDefault) {
        if (on_device(dst, 1)) kind = on_device(src, 1) ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice;
        else kind = on_device(src, 1) ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost;
    }
    if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDeviceToDevice) return fail(cudaErrorInvalidValue, "%s: bad kind", what);
    if (width > dpitch || width > spitch) return fail(cudaErrorInvalidValue, "%s: width above the pitch", what);
    if (device_side(kind, true) && !device_rows(dst, dpitch, width, height))
        return fail(cudaErrorInvalidValue, "%s: the destination is not inside one device allocation", what);
    if (device_side(kind, false) && !device_rows(src, spitch, width, height))
        return fail(cudaErrorInvalidValue, "%s: the source is not inside one device allocation", what);
    return cudaSuccess;
}

void do_copy_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height) {
    for (size_t r = 0; r < height && width > 0; r++)
        std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
}

cudaError_t check_set_2d(void* p, size_t pitch, size_t width, size_t height, const char* what) {
    if (!device_rows(p, pitch, width, height))
        return fail(cudaErrorInvalidValue, "%s: the range is not inside one device allocation", what);
    return cudaSuccess;
}

void do_set_2d(void* p, size_t pitch, int value, size_t width, size_t height) {
    for (size_t r = 0; r < height && width > 0; r++) std::memset(static_cast<char*>(p) + r * pitch, value, width);
}

std::map<const void*, size_t>& dynamic_smem_attribute() {  // cudaFuncSetAttribute's
    static std::map<const void*, size_t> m;
    return m;
}

// Static plus dynamic shared memory a block of this kernel may have.
size_t shared_memory_limit(const void* kernel) {
    return dynamic_smem_attribute().count(kernel) ? OPTIN_SMEM : DEFAULT_SMEM;
}

size_t dynamic_smem_limit(const void* kernel) {
    auto it = dynamic_smem_attribute().find(kernel);
    return it == dynamic_smem_attribute().end() ? DEFAULT_SMEM : it->second;
}

cudaError_t check_config(const LaunchConfig& c) {
    const dim3 b = c.block, gr = c.grid;
    if (b.x == 0 || b.y == 0 || b.z == 0 || b.x > 1024 || b.y > 1024 || b.z > 64 || (size_t)b.x * b.y * b.z > 1024 ||
        gr.x == 0 || gr.y == 0 || gr.z == 0 || gr.x > 0x7fffffffu || gr.y > 65535 || gr.z > 65535)
        return fail(cudaErrorInvalidConfiguration);
    if (c.dynamic_smem > dynamic_smem_limit(c.kernel)) return fail(cudaErrorInvalidValue);
    return cudaSuccess;
}

// ---------------------------------------------------------------------------------------
// pinned host memory, streams and capture

std::map<uintptr_t, size_t>& pinned() {  // start -> bytes, from cudaMallocHost
    static std::map<uintptr_t, size_t> m;
    return m;
}

bool is_pinned(const void* p, size_t bytes) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = pinned().upper_bound(a);
    if (it == pinned().begin()) return false;
    --it;
    return a - it->first <= it->second && bytes <= it->second - (a - it->first);
}

// The host side of a copy, if it has one, lies in pinned memory.
bool host_side_pinned(cudaMemcpyKind kind, void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                      size_t height) {
    const size_t dspan = height == 0 ? 0 : (height - 1) * dpitch + width, sspan = height == 0 ? 0 : (height - 1) * spitch + width;
    if (kind == cudaMemcpyHostToDevice) return is_pinned(src, sspan);
    if (kind == cudaMemcpyDeviceToHost) return is_pinned(dst, dspan);
    if (kind == cudaMemcpyHostToHost) return is_pinned(src, sspan) && is_pinned(dst, dspan);
    return true;
}

std::vector<cudaStream_t>& capturing_streams() {
    static std::vector<cudaStream_t> s;
    return s;
}

// A kernel launch as a stream queues it or a graph records it: the function that runs one
// thread, and the launch's own copy of its arguments.
struct KernelCall {
    LaunchConfig config;
    void (*body)(const void*);
    std::shared_ptr<const void> args;
};

// One piece of work: a kernel, an event's record, or anything else that runs whole (a copy,
// a memset).
struct Work {
    const char* what = "";
    std::shared_ptr<const KernelCall> kernel;
    cudaEvent_t event = nullptr;
    std::function<void()> run;
};

// A kernel being run block by block (below, with the block scheduler).
struct GridRun;
void start_grid(GridRun& grid, const KernelCall& call);
bool run_next_block(GridRun& grid, const KernelCall& call);  // false once every block has run
void finish_grid(GridRun& grid, const KernelCall& call);

size_t kernels_done = 0;
std::set<std::string> kernel_names;  // finished since kernel_names_since() last read them

}  // namespace
}  // namespace kvs_emu

struct CUevent_st {
    std::chrono::steady_clock::time_point at;  // when the stream reached the record
    bool recorded = false;  // ever recorded
    bool complete = true;   // the last record has been reached (or there was none)
    uint64_t generation = 0;  // of the last record: an earlier one reached later does not complete it
};

namespace kvs_emu {
namespace {
struct GridRun {
    std::vector<int> order;  // the blocks, in the order they run
    size_t next = 0;
    void* smem = nullptr;  // the launch's dynamic shared memory, reused by every block
    bool smem_checked = false;
    bool started = false;
    GridRun() = default;
    GridRun(const GridRun&) = delete;
    GridRun& operator=(const GridRun&) = delete;
    ~GridRun() { std::free(smem); }
};

// An item of a stream's queue: the work, and where a kernel has got to.
struct Queued {
    Work work;
    uint64_t generation = 0;  // an event record's
    std::unique_ptr<GridRun> grid;
};
}  // namespace
}  // namespace kvs_emu

struct CUgraph_st {
    std::vector<kvs_emu::Work> nodes;  // recorded work, in stream order
};
struct CUgraphExec_st {
    std::vector<kvs_emu::Work> nodes;
};
struct CUstream_st {
    bool blocking = true;      // waits for, and is waited for by, the legacy default stream
    bool capturing = false;
    bool invalidated = false;  // a forbidden call during the capture: EndCapture fails
    CUgraph_st* graph = nullptr;
    std::deque<kvs_emu::Queued> queue;  // issued, not run yet (the front may be a kernel under way)
};

namespace kvs_emu {
namespace {

// A call that a capture forbids invalidates every capture in progress (the tests run one
// host thread, so global and thread-local capture modes are the same here).
bool refused_during_capture(const char* what) {
    if (capturing_streams().empty()) return false;
    for (cudaStream_t s : capturing_streams()) s->invalidated = true;
    fail(cudaErrorStreamCaptureUnsupported, "%s while a stream is being captured: not allowed (the capture is invalidated)", what);
    return true;
}

// ---- the streams' queues and the device that works through them ----

std::vector<cudaStream_t>& live_streams() {  // every stream created and not destroyed
    static std::vector<cudaStream_t> s;
    return s;
}

// Runs the front piece of a stream's queue: one block of a kernel, or a whole copy, memset or
// event record.
void run_piece(cudaStream_t s) {
    Queued& q = s->queue.front();
    if (q.work.kernel) {
        if (!q.grid) {
            q.grid = std::make_unique<GridRun>();
            start_grid(*q.grid, *q.work.kernel);
        }
        if (run_next_block(*q.grid, *q.work.kernel)) return;
        finish_grid(*q.grid, *q.work.kernel);
        s->queue.pop_front();
        return;
    }
    Queued done = std::move(q);
    s->queue.pop_front();
    if (done.work.event) {
        if (done.generation == done.work.event->generation) {
            done.work.event->complete = true;
            done.work.event->at = std::chrono::steady_clock::now();
        }
    } else if (done.work.run) {
        done.work.run();
    }
}

// One step of the device: the next stream with queued work (in turn; KVS_EMU_ORDER=random:
// any) runs one piece. False when no stream has work.
bool device_step() {
    auto& all = live_streams();
    static size_t turn = 0;
    std::vector<cudaStream_t> busy;
    for (size_t i = 0; i < all.size(); i++) {
        cudaStream_t s = all[(turn + 1 + i) % all.size()];
        if (!s->queue.empty()) busy.push_back(s);
    }
    if (busy.empty()) return false;
    cudaStream_t s = settings().order == Order::Random ? busy[next_random() % busy.size()] : busy[0];
    turn = std::find(all.begin(), all.end(), s) - all.begin();
    run_piece(s);
    return true;
}

// The host waits: the device works until `done` holds (every stream taking its turns).
template <class Done>
void run_until(Done done) {
    while (!done())
        if (!device_step()) return;
}

void drain_stream(cudaStream_t s) {
    run_until([s] { return s->queue.empty(); });
}

void drain_device() {
    run_until([] { return false; });
}

// What waits for the legacy default stream: every blocking stream's work.
void drain_blocking() {
    run_until([] {
        for (cudaStream_t s : live_streams())
            if (s->blocking && !s->queue.empty()) return false;
        return true;
    });
}

void enqueue(cudaStream_t s, Work work) {
    Queued q;
    if (work.event) {  // a record: the event is pending from now until the stream reaches it
        work.event->recorded = true;
        work.event->complete = false;
        q.generation = ++work.event->generation;
    }
    q.work = std::move(work);
    s->queue.push_back(std::move(q));
}

// Where work issued to `stream` goes: recorded (capturing), refused (false, the error
// recorded), queued, or, on the legacy stream, run at once after the blocking streams.
enum class Route { Record, Queue, RunNow, Refused };
Route route(cudaStream_t stream, const char* what) {
    if (stream && stream->capturing) {
        if (stream->invalidated) {
            fail(cudaErrorStreamCaptureInvalidated);
            return Route::Refused;
        }
        return Route::Record;
    }
    if (!stream && !capturing_streams().empty()) {
        // the legacy default stream waits for every other stream: it would join the capture
        for (cudaStream_t s : capturing_streams()) s->invalidated = true;
        fail(cudaErrorStreamCaptureImplicit, "%s on the legacy default stream while a stream is being captured", what);
        return Route::Refused;
    }
    if (g.running >= 0) {
        std::fprintf(stderr, "kvs_emu: %s issued from inside a kernel: not emulated\n", what);
        std::abort();
    }
    return stream ? Route::Queue : Route::RunNow;
}

bool issue_work(cudaStream_t stream, Work work) {
    switch (route(stream, work.what)) {
        case Route::Refused: return false;
        case Route::Record: stream->graph->nodes.push_back(std::move(work)); return true;
        case Route::Queue: enqueue(stream, std::move(work)); return true;
        case Route::RunNow: break;
    }
    drain_blocking();
    if (work.kernel) {
        GridRun grid;
        start_grid(grid, *work.kernel);
        while (run_next_block(grid, *work.kernel)) {
        }
        finish_grid(grid, *work.kernel);
    } else if (work.event) {
        work.event->recorded = work.event->complete = true;
        ++work.event->generation;
        work.event->at = std::chrono::steady_clock::now();
    } else {
        work.run();
    }
    return true;
}

}  // namespace

bool issue(cudaStream_t stream, const char* what, std::function<void()> work) {
    Work w;
    w.what = what;
    w.run = std::move(work);
    return issue_work(stream, std::move(w));
}

bool issue_kernel(const LaunchConfig& config, void (*thread_body)(const void*), std::shared_ptr<const void> args) {
    Work w;
    w.what = config.name;
    w.kernel = std::make_shared<const KernelCall>(KernelCall{config, thread_body, std::move(args)});
    return issue_work(config.stream, std::move(w));
}

size_t kernels_finished() { return kernels_done; }

std::vector<std::string> kernel_names_since() {
    std::vector<std::string> names(kernel_names.begin(), kernel_names.end());
    kernel_names.clear();
    return names;
}

namespace {
// A fault of work that ran after the memory it uses went away (a graph replayed after a
// buffer was freed): cudaErrorIllegalAddress at the next wait, like a GPU's fault.
void replay_fault(const char* what, const char* which) {
    std::fprintf(stderr, "kvs_emu: %s: its %s memory was freed after the copy was issued or captured (a GPU reads "
                         "or writes memory that is gone): cudaErrorIllegalAddress\n", what, which);
    pending_fault = cudaErrorIllegalAddress;
}

// An async copy or memset: checked now, then issued; it checks again when it runs (the
// memory may have been freed since it was captured). A copy with a pageable host side runs
// at once, after its stream's queued work.
cudaError_t issue_copy(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                       cudaMemcpyKind kind, cudaStream_t stream, const char* what) {
    if (const cudaError_t e = check_copy_2d(dst, dpitch, src, spitch, width, height, kind, what)) return e;
    const bool pinned_host = host_side_pinned(kind, dst, dpitch, src, spitch, width, height);
    if (stream && stream->capturing && !pinned_host)
        return fail(cudaErrorInvalidValue, "%s: a captured copy's host memory must be pinned (cudaMallocHost)", what);
    if (stream && !stream->capturing && !pinned_host) drain_stream(stream);  // staged: synchronous for the host
    const bool ok = issue(stream, what, [=] {
        if (pinned_host && !host_side_pinned(kind, dst, dpitch, src, spitch, width, height))
            return replay_fault(what, "pinned host");
        cudaMemcpyKind k = kind;
        const cudaError_t before = last_error;  // a fault now, not a launch error for cudaGetLastError
        const bool inside = check_copy_2d(dst, dpitch, src, spitch, width, height, k, what) == cudaSuccess;
        last_error = before;
        if (!inside) return replay_fault(what, "device");
        do_copy_2d(dst, dpitch, src, spitch, width, height);
    });
    if (ok && stream && !stream->capturing && !pinned_host) drain_stream(stream);
    return ok ? cudaSuccess : last_error;
}

cudaError_t issue_set(void* p, size_t pitch, int value, size_t width, size_t height, cudaStream_t stream, const char* what) {
    if (const cudaError_t e = check_set_2d(p, pitch, width, height, what)) return e;
    const bool ok = issue(stream, what, [=] {
        const cudaError_t before = last_error;
        const bool inside = check_set_2d(p, pitch, width, height, what) == cudaSuccess;
        last_error = before;
        if (!inside) return replay_fault(what, "device");
        do_set_2d(p, pitch, value, width, height);
    });
    return ok ? cudaSuccess : last_error;
}
}  // namespace

bool check_launch(const LaunchConfig& config) { return check_config(config) == cudaSuccess; }

// ---------------------------------------------------------------------------------------
// the device side of the built-ins

void sync_threads(const char* file, int line) {
    ThreadState& s = running_thread("__syncthreads");
    s.wait = Wait::Barrier;
    s.file = file;
    s.line = line;
    suspend();
}

uint64_t shuffle(Shuffle kind, const char* file, int line, unsigned mask, uint64_t value, int arg, int width) {
    ThreadState& s = running_thread("a warp shuffle");
    s.wait = Wait::Warp;
    s.file = file;
    s.line = line;
    s.kind = kind;
    s.mask = mask;
    s.value = value;
    s.arg = arg;
    s.width = width;
    suspend();
    return g.state[g.running].result;
}

void block_shared(void* array, size_t bytes) {
    running_thread("a __shared__ declaration");
    for (const auto& a : g.shared_arrays)
        if (a.first == array) return;
    g.shared_arrays.push_back({array, bytes});
    g.static_smem += bytes;
    std::memset(array, 0xFF, bytes);
}

void sync_warp(const char* file, int line, unsigned mask) { shuffle(Shuffle::Index, file, line, mask, 0, 0, 32); }

namespace {
// Whether [p, p + bytes) lies in this block's shared memory: its dynamic part or an array.
bool in_shared(const void* p, size_t bytes) {
    auto inside = [&](const void* base, size_t size) {
        const char* c = static_cast<const char*>(p);
        const char* b = static_cast<const char*>(base);
        return c >= b && c + bytes <= b + size;
    };
    if (g.dynamic_smem && inside(g.dynamic_smem, g.config->dynamic_smem)) return true;
    for (const auto& a : g.shared_arrays)
        if (inside(a.first, a.second)) return true;
    return false;
}

void land(const PendingCopy& c) {
    if (c.valid)
        std::memcpy(c.dst, c.src, c.bytes);
    else
        std::memset(c.dst, 0, c.bytes);
}
}  // namespace

void async_copy(void* dst, const void* src, int bytes, bool valid) {
    ThreadState& s = running_thread("cp.async");
    if (bytes != 4 && bytes != 8 && bytes != 16) kernel_failure("cp.async of %d bytes: 4, 8 or 16", bytes);
    if (reinterpret_cast<uintptr_t>(dst) % bytes != 0 || (valid && reinterpret_cast<uintptr_t>(src) % bytes != 0))
        kernel_failure("%s: cp.async of %d bytes from %p to %p: both must be %d-byte aligned", describe(g.running).c_str(),
                       bytes, src, dst, bytes);
    if (!in_shared(dst, bytes))
        kernel_failure("%s: cp.async to %p, which is not this block's shared memory", describe(g.running).c_str(), dst);
    if (valid && !on_device(src, bytes))  // a GPU faults (or reads a neighbour's memory)
        kernel_failure("%s: cp.async from %p, outside every device allocation", describe(g.running).c_str(), src);
    // When it lands: at the wait (forward order), at once (reverse), either (random, per copy).
    // Late catches a buffer read before its copies were waited for; early, a buffer refilled
    // while other threads still read it (a barrier missing before the refill).
    const Order order = settings().order;
    const bool now = order == Order::Reverse || (order == Order::Random && (next_random() & 1));
    PendingCopy c{dst, src, bytes, valid, s.groups, false};
    if (now) {
        land(c);
        c.landed = true;
    }
    s.copies.push_back(c);  // until waited for, landed or not
}

void async_commit() { running_thread("cp.async.commit_group").groups++; }

void async_wait(int pending) {
    ThreadState& s = running_thread("cp.async.wait_group");
    size_t done = 0;
    for (; done < s.copies.size() && s.copies[done].group < s.groups - pending; done++)
        if (!s.copies[done].landed) land(s.copies[done]);
    s.copies.erase(s.copies.begin(), s.copies.begin() + done);
}

void* dynamic_shared_memory() {
    running_thread("extern __shared__");
    return g.dynamic_smem;
}

void launch_bounds(int max_threads, int) {
    const int threads = g.threads;
    if (threads > max_threads)
        kernel_failure("launched with %d threads per block, above its __launch_bounds__(%d): the launch fails on a GPU",
                       threads, max_threads);
}

namespace {
// The launch whose blocks g runs now: rebound when another stream's kernel takes a turn.
const GridRun* bound = nullptr;

void bind(GridRun& grid, const KernelCall& call) {
    const LaunchConfig& config = call.config;
    g.config = &config;
    g.body = call.body;
    g.args = call.args.get();
    g.dynamic_smem = grid.smem;
    g.smem_checked = grid.smem_checked;
    block_dim = config.block;
    grid_dim = config.grid;
    if (bound == &grid) return;
    bound = &grid;
    g.threads = (int)(config.block.x * config.block.y * config.block.z);
    g.state.resize(g.threads);
    g.index.resize(g.threads);
    for (int t = 0; t < g.threads; t++) {
        const unsigned bx = config.block.x, by = config.block.y;
        g.index[t] = uint3{t % bx, (t / bx) % by, t / (bx * by)};
    }
    while ((int)g.fibers.size() < g.threads) g.fibers.push_back(make_fiber());
}

void unbind(GridRun& grid) {
    grid.smem_checked = g.smem_checked;
    g.config = nullptr;
    g.dynamic_smem = nullptr;
}

void start_grid(GridRun& grid, const KernelCall& call) {
    grid.started = true;
    const LaunchConfig& config = call.config;
    if (check_config(config) != cudaSuccess) return;  // checked at the launch; no blocks then
    // exactly the bytes asked for, so that AddressSanitizer sees an overrun
    if (posix_memalign(&grid.smem, 128, std::max<size_t>(config.dynamic_smem, 1)) != 0) std::abort();
    const size_t blocks = (size_t)config.grid.x * config.grid.y * config.grid.z;
    if (blocks > 0x7fffffff) {
        std::fprintf(stderr, "kvs_emu: kernel %s: %zu blocks: more than the emulator counts\n", config.name, blocks);
        std::abort();
    }
    fill_order(grid.order, (int)blocks);
}

bool run_next_block(GridRun& grid, const KernelCall& call) {
    if (grid.next >= grid.order.size()) return false;
    bind(grid, call);
    const LaunchConfig& config = call.config;
    const int i = grid.order[grid.next++];
    const unsigned gx = config.grid.x, gy = config.grid.y;
    run_block(uint3{i % gx, (i / gx) % gy, i / (gx * gy)});
    unbind(grid);
    if (g.trapped) {  // the launch ends here; the fibers stopped inside it: new ones for the next
        grid.next = grid.order.size();
        g.trapped = false;
        g.fibers.clear();
        bound = nullptr;
        pending_fault = cudaErrorLaunchFailure;
    }
    return grid.next < grid.order.size();
}

void finish_grid(GridRun& grid, const KernelCall& call) {
    if (bound == &grid) bound = nullptr;
    kernels_done++;
    kernel_names.insert(call.config.name);
}
}  // namespace

void trap(const char*, int) {
    ThreadState& s = running_thread("__trap");
    s.wait = Wait::Done;
    g.trapped = true;
    Fiber* self = g.fibers[g.running].get();
    g.running = -1;
    switch_stacks(self, nullptr);  // to the scheduler, never to come back
    std::abort();
}

}  // namespace kvs_emu

// ---------------------------------------------------------------------------------------
// runtime API

using namespace kvs_emu;

cudaError_t cudaGetDeviceCount(int* count) {
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice);
    *prop = cudaDeviceProp{};
    std::snprintf(prop->name, sizeof prop->name, "CPU emulator (tests/cuda_on_cpu), not a GPU");
    prop->totalGlobalMem = DEVICE_BYTES;
    prop->sharedMemPerBlock = DEFAULT_SMEM;
    prop->sharedMemPerBlockOptin = OPTIN_SMEM;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    prop->multiProcessorCount = SM_COUNT;
    prop->major = 9;
    prop->minor = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice);
    switch (attr) {
        case cudaDevAttrMaxThreadsPerBlock: *value = 1024; return cudaSuccess;
        case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)DEFAULT_SMEM; return cudaSuccess;
        case cudaDevAttrWarpSize: *value = 32; return cudaSuccess;
        case cudaDevAttrMultiProcessorCount: *value = SM_COUNT; return cudaSuccess;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)OPTIN_SMEM; return cudaSuccess;
    }
    return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute %d not emulated", (int)attr);
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
        return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: attribute %d not emulated", (int)attr);
    if (value < 0 || (size_t)value > OPTIN_SMEM) return fail(cudaErrorInvalidValue);
    dynamic_smem_attribute()[func] = (size_t)value;
    return cudaSuccess;
}

// Waiting runs the queued work it waits for (and other streams' meanwhile), then reports a
// trapped kernel's fault; a capture in progress forbids it.
cudaError_t cudaDeviceSynchronize() {
    if (refused_during_capture("cudaDeviceSynchronize")) return last_error;
    drain_device();
    return wait_for_device();
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (refused_during_capture("cudaStreamSynchronize")) return last_error;
    if (stream) drain_stream(stream);  // the legacy stream's work ran when it was issued
    return wait_for_device();
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
    if (refused_during_capture("cudaStreamQuery")) return last_error;
    return stream && !stream->queue.empty() ? cudaErrorNotReady : cudaSuccess;
}

cudaError_t cudaGetLastError() {
    const cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError() { return last_error; }

const char* cudaGetErrorName(cudaError_t err) {
    switch (err) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorNotReady: return "cudaErrorNotReady";
        case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
        case cudaErrorLaunchTimeout: return "cudaErrorLaunchTimeout";
        case cudaErrorAssert: return "cudaErrorAssert";
        case cudaErrorIllegalInstruction: return "cudaErrorIllegalInstruction";
        case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
        case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
        case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
        case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    }
    return "unrecognized error code";
}

const char* cudaGetErrorString(cudaError_t err) {
    switch (err) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorNotReady: return "device not ready";
        case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
        case cudaErrorLaunchTimeout: return "the launch timed out and was terminated";
        case cudaErrorAssert: return "device-side assert triggered";
        case cudaErrorIllegalInstruction: return "an illegal instruction was encountered";
        case cudaErrorMisalignedAddress: return "misaligned address";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
        case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
        case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
        case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
    }
    return "unrecognized error code";
}

// Device memory is host memory, 256-byte aligned like cudaMalloc's, filled with 0xFF bytes
// (NaN as floats) so that what no kernel wrote shows.
cudaError_t cudaMalloc(void** p, size_t bytes) {
    *p = nullptr;
    if (refused_during_capture("cudaMalloc")) return last_error;
    if (bytes == 0) return cudaSuccess;
    if (bytes > DEVICE_BYTES - allocated_bytes) return fail(cudaErrorMemoryAllocation);
    void* mem = nullptr;
    if (posix_memalign(&mem, 256, bytes) != 0) return fail(cudaErrorMemoryAllocation);
    std::memset(mem, 0xFF, bytes);
    allocations()[reinterpret_cast<uintptr_t>(mem)] = bytes;
    allocated_bytes += bytes;
    *p = mem;
    return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
    if (refused_during_capture("cudaFree")) return last_error;
    drain_device();  // it waits for the device: queued work may still use the memory
    if (!p) return cudaSuccess;
    auto it = allocations().find(reinterpret_cast<uintptr_t>(p));
    if (it == allocations().end()) return fail(cudaErrorInvalidValue, "cudaFree: %p is not a device allocation", p);
    allocated_bytes -= it->second;
    allocations().erase(it);
    std::free(p);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    *free_bytes = DEVICE_BYTES - allocated_bytes;
    *total_bytes = DEVICE_BYTES;
    return cudaSuccess;
}

// The synchronous copies and memsets run on the legacy default stream and wait for it.
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    return cudaMemcpy2D(dst, bytes, src, bytes, bytes, 1, kind);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    return issue_copy(dst, bytes, src, bytes, bytes, 1, kind, stream, "cudaMemcpyAsync");
}

cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind) {
    if (refused_during_capture("a synchronous cudaMemcpy")) return last_error;
    drain_blocking();
    if (const cudaError_t e = wait_for_device()) return e;
    return issue_copy(dst, dpitch, src, spitch, width, height, kind, nullptr, "cudaMemcpy2D");
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream) {
    return issue_copy(dst, dpitch, src, spitch, width, height, kind, stream, "cudaMemcpy2DAsync");
}

cudaError_t cudaMemset(void* p, int value, size_t bytes) { return cudaMemset2D(p, bytes, value, bytes, 1); }

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream) {
    return issue_set(p, bytes, value, bytes, 1, stream, "cudaMemsetAsync");
}

cudaError_t cudaMemset2D(void* p, size_t pitch, int value, size_t width, size_t height) {
    if (refused_during_capture("a synchronous cudaMemset")) return last_error;
    return issue_set(p, pitch, value, width, height, nullptr, "cudaMemset2D");
}

cudaError_t cudaMemset2DAsync(void* p, size_t pitch, int value, size_t width, size_t height, cudaStream_t stream) {
    return issue_set(p, pitch, value, width, height, stream, "cudaMemset2DAsync");
}

// Events hold the host time at which their stream reached them.
cudaError_t cudaEventCreate(cudaEvent_t* event) {
    *event = new CUevent_st;
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    if (!event) return fail(cudaErrorInvalidResourceHandle);
    run_until([event] { return event->complete; });  // a queued record still points at it
    delete event;
    return cudaSuccess;
}

cudaError_t cudaEventRecordWithFlags(cudaEvent_t event, cudaStream_t stream, unsigned flags) {
    if (!event) return fail(cudaErrorInvalidResourceHandle);
    if (stream && stream->capturing && !(flags & cudaEventRecordExternal))  // a GPU makes it a dependency, not a node
        return fail(cudaErrorStreamCaptureUnsupported, "cudaEventRecord on a capturing stream without cudaEventRecordExternal: not emulated");
    Work w;
    w.what = "cudaEventRecord";
    w.event = event;
    return issue_work(stream, std::move(w)) ? cudaSuccess : last_error;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    return cudaEventRecordWithFlags(event, stream, cudaEventRecordDefault);
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (!event) return fail(cudaErrorInvalidResourceHandle);
    if (refused_during_capture("cudaEventSynchronize")) return last_error;
    run_until([event] { return event->complete; });
    return wait_for_device();
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
    if (!event) return fail(cudaErrorInvalidResourceHandle);
    return event->complete ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
    if (!start || !end) return fail(cudaErrorInvalidResourceHandle);
    if (!start->recorded || !end->recorded) return fail(cudaErrorInvalidResourceHandle);
    if (!start->complete || !end->complete) return fail(cudaErrorNotReady);
    *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
    return cudaSuccess;
}

// ---------------------------------------------------------------------------------------
// streams, capture and graphs

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
    *stream = new CUstream_st;
    (*stream)->blocking = !(flags & cudaStreamNonBlocking);
    live_streams().push_back(*stream);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (!stream) return fail(cudaErrorInvalidResourceHandle);
    if (stream->capturing) return fail(cudaErrorInvalidValue, "cudaStreamDestroy: the stream is being captured");
    drain_stream(stream);  // a GPU finishes the queued work first
    auto& all = live_streams();
    all.erase(std::find(all.begin(), all.end(), stream));
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
    if (!stream) return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture: the legacy default stream cannot be captured");
    if (stream->capturing) return fail(cudaErrorInvalidValue, "cudaStreamBeginCapture: the stream is already being captured");
    stream->capturing = true;
    stream->invalidated = false;
    stream->graph = new CUgraph_st;
    capturing_streams().push_back(stream);
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
    *graph = nullptr;
    if (!stream || !stream->capturing) return fail(cudaErrorInvalidValue, "cudaStreamEndCapture: the stream is not being captured");
    auto& all = capturing_streams();
    all.erase(std::find(all.begin(), all.end(), stream));
    stream->capturing = false;
    CUgraph_st* g = stream->graph;
    stream->graph = nullptr;
    if (stream->invalidated) {
        delete g;
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    *graph = g;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
    if (!stream) *status = cudaStreamCaptureStatusNone;
    else if (!stream->capturing) *status = cudaStreamCaptureStatusNone;
    else *status = stream->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
    *exec = nullptr;
    if (!graph) return fail(cudaErrorInvalidValue, "cudaGraphInstantiate: no graph");
    *exec = new CUgraphExec_st{graph->nodes};
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    if (!exec) return fail(cudaErrorInvalidValue, "cudaGraphLaunch: no graph");
    if (stream && stream->capturing) return fail(cudaErrorStreamCaptureUnsupported, "cudaGraphLaunch into a capture: not emulated");
    for (const Work& node : exec->nodes)  // queued one by one, so streams interleave inside a graph too
        if (!issue_work(stream, node)) return last_error;
    return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count) {
    if (!graph || nodes) return fail(cudaErrorInvalidValue, "cudaGraphGetNodes: only the count of a graph is emulated");
    *count = graph->nodes.size();
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}

// ---------------------------------------------------------------------------------------
// pinned host memory

cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaHostAlloc(p, bytes, cudaHostAllocDefault); }

cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) {
    *p = nullptr;
    if (refused_during_capture("cudaMallocHost")) return last_error;
    if (bytes == 0) return cudaSuccess;
    void* mem = nullptr;
    if (posix_memalign(&mem, 256, bytes) != 0) return fail(cudaErrorMemoryAllocation);
    std::memset(mem, 0xFF, bytes);  // like device memory: unwritten data shows as NaN
    pinned()[reinterpret_cast<uintptr_t>(mem)] = bytes;
    *p = mem;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void* p) {
    if (refused_during_capture("cudaFreeHost")) return last_error;
    drain_device();  // it waits for the device, like cudaFree
    if (!p) return cudaSuccess;
    auto it = pinned().find(reinterpret_cast<uintptr_t>(p));
    if (it == pinned().end()) return fail(cudaErrorInvalidValue, "cudaFreeHost: %p is not pinned host memory", p);
    pinned().erase(it);
    std::free(p);
    return cudaSuccess;
}
