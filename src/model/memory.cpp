#include "src/model/memory.h"
#include "cuda/gemm_plan.h"
#include "src/model/kv_cache.h"
#include "src/model/model.h"
#include "src/util.h"
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <omp.h>

size_t sat_mul(size_t a, size_t b) {
    size_t r;
    return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

size_t sat_add(size_t a, size_t b) {
    size_t r;
    return __builtin_add_overflow(a, b, &r) ? SIZE_MAX : r;
}

size_t sat_product(std::initializer_list<size_t> factors) {
    size_t r = 1;
    for (size_t f : factors) r = sat_mul(r, f);
    return r;
}

MemoryNeed& MemoryNeed::host(const std::string& what, size_t bytes) {
    parts.push_back({what, bytes, false});
    return *this;
}

MemoryNeed& MemoryNeed::gpu(const std::string& what, size_t bytes) {
    parts.push_back({what, bytes, true});
    return *this;
}

size_t MemoryNeed::host_bytes() const {
    size_t n = 0;
    for (const Part& p : parts)
        if (!p.on_gpu) n = sat_add(n, p.bytes);
    return n;
}

size_t MemoryNeed::gpu_bytes() const {
    size_t n = 0;
    for (const Part& p : parts)
        if (p.on_gpu) n = sat_add(n, p.bytes);
    return n;
}

// ---------------------------------------------------------------------------
// the formulas

// The tensors the loaders allocate (weight_sizes). Config fields are checked
// (validate_config: at most 1024 layers, dim 2^16, hidden 2^18, vocab 2^22), so each
// tensor's size fits a size_t; their sum and the bytes saturate all the same.
size_t weight_bytes(const Config& c, int n_kv_layers) {
    size_t floats = 0;
    for (size_t n : weight_sizes(c, n_kv_layers)) floats = sat_add(floats, n);
    return sat_mul(floats, sizeof(float));
}

size_t kv_cache_bytes(const Config& c, int n_kv_layers, int batch, int context) {
    return sat_product({2, (size_t)n_kv_layers, (size_t)batch, (size_t)context, (size_t)c.kv_dim(), sizeof(float)});
}

size_t run_state_bytes(const Config& c, bool iterates, size_t rows, size_t kept) {
    const size_t D = c.dim, H = c.hidden_dim, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim();
    // x, xb (dim); q, att (q_dim); k, v (kv_dim); hb, hb2 (hidden); block_input (dim)
    const size_t width = 2 * D + 2 * Q + 2 * KV + 2 * H + (iterates ? D : 0);
    size_t bytes = sat_product({rows, width, sizeof(float)});
    bytes = sat_add(bytes, sat_product({rows, 2, sizeof(int)}));          // token ids, positions
    bytes = sat_add(bytes, sat_product({kept, V + D, sizeof(float)}));     // logits, final hidden
    return bytes;
}

size_t train_step_bytes(const Config& c, const Plan& plan, int batch, int seq, int b_iterations) {
    const size_t D = c.dim, H = c.hidden_dim, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim();
    const size_t rows = sat_mul((size_t)batch, (size_t)seq);
    size_t in_blocks = 0, kv_in_blocks = 0;
    for (const Block& blk : plan.blocks)
        for (int l = blk.first; l <= blk.last; l++) {
            in_blocks++;
            if (plan.owns_kv(l)) kv_in_blocks++;
        }
    const size_t b = plan.iterates() ? (size_t)std::max(1, b_iterations) : 1;
    const size_t outside = (size_t)c.n_layers - in_blocks;
    const size_t kv_outside = (size_t)plan.n_kv_layers() - kv_in_blocks;
    // Acts: x_in, xn1, x_mid, xn2 (dim), q, att (q_dim), gate, up, denom (hidden)
    const size_t acts = 4 * D + 2 * Q + 3 * H;
    const size_t executions = sat_add(outside, sat_mul(b, in_blocks)) + 1;  // + the unrecorded scratch
    const size_t kv_executions = sat_add(kv_outside, sat_mul(b, kv_in_blocks));
    size_t width = sat_mul(executions, acts);
    width = sat_add(width, sat_mul(kv_executions, 4 * KV));        // K, V, dK, dV of recorded KV layers
    width = sat_add(width, sat_mul((size_t)plan.n_kv_layers(), 4 * KV));  // two unrecorded K/V per slot
    width = sat_add(width, 2 * KV);                                  // the zero K/V
    width = sat_add(width, 2 * V + 8 * D + 4 * H + 2 * Q);         // logits, dlogits; x, tmp, dx, ...; act; backward scratch
    // attention's backward keeps P and dS of one sequence, (heads, seq, seq) each: counted
    // per row as 2 x heads x seq, which is batch times that (a few MB at the models' shapes)
    width = sat_add(width, sat_mul(2 * (size_t)c.n_heads, (size_t)seq));
    return sat_add(sat_product({rows, width, sizeof(float)}), sat_product({rows, 2, sizeof(int)}));
}

void add_backend(MemoryNeed& need, const Model& m, Device d, int batch, int context, int prompt, bool all_positions) {
    const Config& c = m.config;
    if (context <= 0) context = c.max_seq_len;
    prompt = std::max(1, std::min(prompt, context));
    const size_t rows = sat_mul((size_t)batch, (size_t)prompt);
    // token-by-token prefill keeping every position gathers them beside the last step's
    const size_t kept = all_positions ? sat_add(rows, (size_t)batch) : (size_t)batch;
    const std::string shape = std::to_string(m.plan.n_kv_layers()) + " KV layers x " + std::to_string(batch) +
                              " sequences x " + std::to_string(context) + " positions";
    const size_t kv = kv_cache_bytes(c, m.plan.n_kv_layers(), batch, context);
    const size_t state = run_state_bytes(c, m.plan.iterates(), rows, kept);
    if (d == Device::CPU) {
        need.host("KV cache (" + shape + ")", kv);
        // + attention_blocked's scores, up to 32 queries x the context per thread, kept by each thread
        const size_t scores = sat_product({(size_t)omp_get_max_threads(), 32, (size_t)context, sizeof(float)});
        need.host("run state (" + std::to_string(batch) + " x " + std::to_string(prompt) + " prompt rows)",
                  sat_add(state, scores));
        return;
    }
    // cuda/forward.cu: the weights' copy, the cache, the same run state, split decode's
    // partials (attention_decode_workspace_floats: chunks of at least 32 positions), and the
    // backend's own split-K scratch (cuda/gemm_plan.h)
    const size_t chunks = ((size_t)context + 31) / 32;
    size_t work = sat_product({(size_t)batch, (size_t)c.n_heads, chunks, (size_t)c.head_size() + 2, sizeof(float)});
    work = sat_add(work, kGemmSplitScratchFloats * sizeof(float) + kGemmSplitMaxTiles * sizeof(unsigned));
    need.gpu("weights on the GPU", weight_bytes(c, m.plan.n_kv_layers()));
    need.gpu("KV cache (" + shape + ")", kv);
    need.gpu("run state (" + std::to_string(batch) + " x " + std::to_string(prompt) + " prompt rows)", sat_add(state, work));
    need.host("logits and hidden states on the host", sat_product({kept, (size_t)c.vocab_size + c.dim, sizeof(float)}));
}

// ---------------------------------------------------------------------------
// what the machine has

static size_t read_size_file(const char* path, bool* ok) {
    std::ifstream f(path);
    std::string word;
    *ok = false;
    if (!(f >> word) || word == "max") return SIZE_MAX;
    try {
        const unsigned long long v = std::stoull(word);
        *ok = true;
        return (size_t)v;
    } catch (const std::exception&) {
        return SIZE_MAX;
    }
}

size_t available_host_bytes() {
    size_t available = SIZE_MAX;
    std::ifstream f("/proc/meminfo");
    std::string key, unit;
    size_t kb = 0;
    while (f >> key >> kb >> unit)
        if (key == "MemAvailable:") {
            available = sat_mul(kb, 1024);
            break;
        }
    // a container's limit (cgroup v2) can be far below what the machine has
    bool has_max = false, has_current = false;
    const size_t max = read_size_file("/sys/fs/cgroup/memory.max", &has_max);
    const size_t current = read_size_file("/sys/fs/cgroup/memory.current", &has_current);
    if (has_max && has_current) available = std::min(available, max > current ? max - current : 0);
    return available;
}

size_t available_gpu_bytes() {
    size_t free_bytes = 0, total_bytes = 0;
    return cuda_memory_info(&free_bytes, &total_bytes) ? free_bytes : 0;
}

static std::string size_text(size_t bytes) {
    return bytes == SIZE_MAX ? "more than 18 EB" : format_bytes((double)bytes);
}

static std::string parts_text(const MemoryNeed& need, bool on_gpu) {
    std::string s;
    for (const MemoryNeed::Part& p : need.parts)
        if (p.on_gpu == on_gpu && p.bytes > 0) s += (s.empty() ? "" : ", ") + p.what + " " + size_text(p.bytes);
    return s;
}

void check_memory(const MemoryNeed& need, const std::string& who, const std::string& hint) {
    const std::string advice = hint.empty() ? "" : "; " + hint;
    const size_t host = need.host_bytes();
    const size_t host_free = available_host_bytes();
    if (host > host_free)
        fail(who + " needs " + size_text(host) + " of memory (" + parts_text(need, false) + ") but " + size_text(host_free) +
             " is available" + advice);
    const size_t gpu = need.gpu_bytes();
    size_t gpu_free = 0, gpu_total = 0;
    if (gpu > 0 && cuda_memory_info(&gpu_free, &gpu_total) && gpu > gpu_free)
        fail(who + " needs " + size_text(gpu) + " of GPU memory (" + parts_text(need, true) + ") but " + size_text(gpu_free) +
             " is free on the GPU" + advice);
}
