// The GPU forward pass (DESIGN.md sections 1 and 2), step for step the CPU reference of
// reference/forward.cpp on the kernels of cuda/kernels.h and cuda/decode_kernels.h:
//
//   embed -> for each layer: x += Attn(RMSNorm(x)) over the source's cache slot,
//                            x += SwiGLU(RMSNorm(x))
//         -> final RMSNorm -> classifier
//
// Everything stays on the device between the token upload and the result download: a
// cyclic block's iterations restore the block's entry residual with a device copy, clear
// the upward K/V with a device fill and write each iteration's K/V straight into the
// cache, so no data goes back to the host inside the loop.
//
// All work goes to the backend's stream, in the order of the code. A decode step reads its
// tokens (s_.tokens) and its position (s_.counter) from device memory and ends by advancing
// the counter, so its launches are the same at every step: run_step captures them once into
// a CUDA graph and replays it for every token. Prefill captures one iteration of each
// cyclic block the same way. Host data crosses the bus through pinned buffers only.
#include "cuda/check.h"
#include "cuda/common.cuh"
#include "cuda/decode_kernels.h"
#include "cuda/forward.h"
#include "cuda/kernels.h"
#include "src/util.h"
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

std::unique_ptr<Backend> make_cuda_backend(const Model& m, int batch, int context, CudaDecodeOptions cuda) {
    return std::make_unique<CudaBackend>(m, batch, context, cuda);
}

// ---------------------------------------------------------------------------
// device and pinned arrays, graphs

namespace {
size_t generation = 0;
}  // namespace

size_t buffer_generation() { return generation; }

template <typename T>
DeviceArray<T>::~DeviceArray() {
    // No CUDA_CHECK: a destructor must not throw, and at exit the context may be gone.
    if (p_) {
        cudaFree(p_);
        generation++;  // a graph captured with it must not replay
    }
}

template <typename T>
void DeviceArray<T>::reserve(size_t n) {
    if (n <= n_) return;
    if (p_) CUDA_CHECK(cudaFree(p_));  // the contents go anyway: free first, lower peak
    p_ = nullptr;
    n_ = 0;
    generation++;
    const cudaError_t err = cudaMalloc(&p_, n * sizeof(T));
    if (err != cudaSuccess) {
        p_ = nullptr;
        cudaGetLastError();  // out of memory is not sticky; clear it
        fail("cannot allocate " + format_bytes((double)(n * sizeof(T))) + " on the GPU (" + cudaGetErrorString(err) + ")");
    }
    n_ = n;
    CUDA_CHECK(cudaMemset(p_, 0xFF, n * sizeof(T)));  // NaN until a kernel writes it
}

template <typename T>
void DeviceArray<T>::upload(const T* host, size_t n) {
    reserve(n);
    if (n > 0) CUDA_CHECK(cudaMemcpy(p_, host, n * sizeof(T), cudaMemcpyHostToDevice));
}

template <typename T>
void DeviceArray<T>::zero() {
    if (n_ > 0) CUDA_CHECK(cudaMemset(p_, 0, n_ * sizeof(T)));
}

template <typename T>
void DeviceArray<T>::swap(DeviceArray& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    generation++;
}

template class DeviceArray<float>;
template class DeviceArray<int>;
template class DeviceArray<uint32_t>;  // also split K's tickets (unsigned)

template <typename T>
PinnedArray<T>::~PinnedArray() {
    if (p_) {
        cudaFreeHost(p_);
        generation++;  // a graph captured with it must not replay (its copies would write freed memory)
    }
}

template <typename T>
void PinnedArray<T>::reserve(size_t n) {
    if (n <= n_) return;
    if (p_) {
        // the old buffer may still be the source or target of a queued copy (growing is rare)
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaFreeHost(p_));
    }
    p_ = nullptr;
    n_ = 0;
    generation++;
    const cudaError_t err = cudaMallocHost(&p_, n * sizeof(T));
    if (err != cudaSuccess) {
        p_ = nullptr;
        cudaGetLastError();
        fail("cannot allocate " + format_bytes((double)(n * sizeof(T))) + " of pinned host memory (" +
             cudaGetErrorString(err) + ")");
    }
    n_ = n;
    std::memset(p_, 0xFF, n * sizeof(T));
}

template class PinnedArray<float>;
template class PinnedArray<int>;

GraphExec::~GraphExec() {
    if (exec_) cudaGraphExecDestroy(exec_);
}

namespace {

// The forward's own runtime calls, each checked and counted (cuda/launch.h); the launch
// functions count their launches themselves. Copies: kvk::copy_async (cuda/common.cuh).
using kvk::copy_async;

// Records the event once the stream's work so far is done: in a capture, a node of the graph
// that records it at every replay.
void record_event(cudaEvent_t event, cudaStream_t stream) {
    count_runtime_call();
    CUDA_CHECK(cudaEventRecordWithFlags(event, stream,
                                        kvk::stream_capturing(stream) ? cudaEventRecordExternal : cudaEventRecordDefault));
}

// Records the work `queue` issues on `stream` as a graph, without running it, and
// instantiates it. A failure inside ends the capture first, so the stream stays usable.
template <class Queue>
std::unique_ptr<GraphExec> capture_graph(cudaStream_t stream, Queue queue) {
    CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    try {
        queue();
    } catch (...) {
        cudaGraph_t partial = nullptr;
        cudaStreamEndCapture(stream, &partial);
        if (partial) cudaGraphDestroy(partial);
        cudaGetLastError();
        throw;
    }
    cudaGraph_t graph = nullptr;
    CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    size_t nodes = 0;
    cudaGraphExec_t exec = nullptr;
    cudaError_t err = cudaGraphGetNodes(graph, nullptr, &nodes);
    if (err == cudaSuccess) err = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);  // the instantiated graph keeps what it needs
    CUDA_CHECK(err);
    return std::make_unique<GraphExec>(exec, nodes, buffer_generation());
}

void launch_graph(const GraphExec& g, cudaStream_t stream) {
    count_runtime_call();
    CUDA_CHECK(cudaGraphLaunch(g.get(), stream));
    // the debug switch of cuda/check.h: the launches inside were not waited for at capture,
    // so a fault in one of them is found here (a debugging wait, not counted)
    if (cuda_sync_after_launch()) CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace

// ---------------------------------------------------------------------------
// setup: checks, weights, cache

static void expect_floats(const Tensor& t, size_t want, const char* name) {
    if (t.size() != want)
        fail(std::string("CUDA forward: weight ") + name + " has " + std::to_string(t.size()) + " floats, the config and plan need " +
             std::to_string(want));
}

CudaBackend::CudaBackend(const Model& m, int batch, int context, CudaDecodeOptions options)
    : config_(m.config), plan_(m.plan), batch_(batch), options_(options) {
    const Config& c = config_;
    std::string why;
    if (!cuda_available(&why)) fail(why);
    if (context <= 0) context = c.max_seq_len;
    if (batch < 1) fail("batch must be at least 1");
    if (batch > 65535) fail("the CUDA forward takes at most 65535 sequences at once (asked for " + std::to_string(batch) + ")");
    if (context > c.max_seq_len)
        fail("context " + std::to_string(context) + " exceeds the model's max_seq_len " + std::to_string(c.max_seq_len));
    if (c.head_size() % 2 != 0 || c.head_size() > 256)
        fail("the CUDA forward needs an even head_size of at most 256; this model has " + std::to_string(c.head_size()));

    int dev = 0;
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    device_name_ = prop.name;

    // weights, once; W_K and W_V exist for KV layers only
    const Weights& hw = m.weights;
    const size_t L = c.n_layers, KVL = plan_.n_kv_layers(), D = c.dim, QD = c.q_dim(), KD = c.kv_dim(),
                 H = c.hidden_dim, V = c.vocab_size;
    expect_floats(hw.token_embedding, V * D, "token_embedding");
    expect_floats(hw.rms_att, L * D, "rms_att");
    expect_floats(hw.wq, L * QD * D, "wq");
    expect_floats(hw.wk, KVL * KD * D, "wk");
    expect_floats(hw.wv, KVL * KD * D, "wv");
    expect_floats(hw.wo, L * D * QD, "wo");
    expect_floats(hw.rms_ffn, L * D, "rms_ffn");
    expect_floats(hw.w1, L * H * D, "w1");
    expect_floats(hw.w2, L * D * H, "w2");
    expect_floats(hw.w3, L * H * D, "w3");
    expect_floats(hw.rms_final, D, "rms_final");
    if (!c.shared_classifier) expect_floats(hw.wcls, V * D, "wcls");
    w_.token_embedding.upload(hw.token_embedding.data(), hw.token_embedding.size());
    w_.rms_att.upload(hw.rms_att.data(), hw.rms_att.size());
    w_.wq.upload(hw.wq.data(), hw.wq.size());
    w_.wk.upload(hw.wk.data(), hw.wk.size());
    w_.wv.upload(hw.wv.data(), hw.wv.size());
    w_.wo.upload(hw.wo.data(), hw.wo.size());
    w_.rms_ffn.upload(hw.rms_ffn.data(), hw.rms_ffn.size());
    w_.w1.upload(hw.w1.data(), hw.w1.size());
    w_.w2.upload(hw.w2.data(), hw.w2.size());
    w_.w3.upload(hw.w3.data(), hw.w3.size());
    w_.rms_final.upload(hw.rms_final.data(), hw.rms_final.size());
    if (!c.shared_classifier) w_.wcls.upload(hw.wcls.data(), hw.wcls.size());
    w_.classifier = c.shared_classifier ? w_.token_embedding.get() : w_.wcls.get();
    // RoPE's frequencies for the fused kernels, computed as rope_gpu computes them
    std::vector<float> freqs(c.head_size() / 2);
    for (size_t i = 0; i < freqs.size(); i++) freqs[i] = 1.0f / powf(c.rope_theta, (float)(2 * i) / (float)c.head_size());
    rope_freqs_.upload(freqs.data(), freqs.size());

    // the cache: KV layers only, zeros like the CPU's
    kv_ = KVLayout{plan_.n_kv_layers(), batch, context, c.kv_dim()};
    key_cache_.reserve(kv_.floats());
    value_cache_.reserve(kv_.floats());
    key_cache_.zero();
    value_cache_.zero();
    s_.decode_work.reserve(attention_decode_counter_workspace_floats(batch, context, c.n_heads, c.n_kv_heads, c.head_size()));
    s_.counter.reserve(1);
    s_.draws.reserve(batch);
    s_.hidden.reserve((size_t)batch * D);
    s_.logits.reserve((size_t)batch * V);
    h_draws_.reserve(batch);
    h_sampled_.reserve(batch);
    grow(batch);
    // split K's partial sums and tile counters, this backend's own: its stream runs beside others
    split_partials_.reserve(kGemmSplitScratchFloats);
    split_tickets_.reserve(kGemmSplitMaxTiles);
    split_tickets_.zero();
    split_ = SplitKScratch{split_partials_.get(), split_tickets_.get()};

    // A blocking stream: the synchronous copies above (legacy default stream) finish first.
    CUDA_CHECK(cudaStreamCreate(&stream_));
    CUDA_CHECK(cudaEventCreate(&staging_free_));
    LaunchStream on(stream_, &split_);
    set_counter_gpu(s_.counter.get(), 0);
}

CudaBackend::~CudaBackend() {
    step_graphs_.clear();
    block_graphs_.clear();
    if (stream_) {
        cudaStreamSynchronize(stream_);  // no work may still use the buffers freed next
        cudaStreamDestroy(stream_);
    }
    if (staging_free_) cudaEventDestroy(staging_free_);
}

bool CudaBackend::fused() const { return options_.fused && batch_ <= kMaxFusedBatch; }

// With the debug switch of cuda/check.h every launch is waited for, which a graph's launches
// cannot be: the forward then runs launch by launch, so a fault names its kernel.
bool CudaBackend::use_graphs() const { return options_.graphs && !cuda_sync_after_launch(); }

void CudaBackend::grow(size_t rows) {
    const Config& c = config_;
    s_.x.reserve(rows * c.dim);
    s_.xb.reserve(rows * c.dim);
    s_.q.reserve(rows * c.q_dim());
    s_.k.reserve(rows * c.kv_dim());
    s_.v.reserve(rows * c.kv_dim());
    s_.att.reserve(rows * c.q_dim());
    s_.hb.reserve(rows * c.hidden_dim);
    s_.hb2.reserve(rows * c.hidden_dim);
    if (plan_.iterates()) s_.block_input.reserve(rows * c.dim);
    s_.tokens.reserve(rows);
    s_.positions.reserve(rows);
    if (capture_)
        for (auto& p : layer_pinned_) p->reserve(rows * c.dim);
}

void CudaBackend::wait() const {
    count_runtime_call();
    CUDA_CHECK(cudaStreamSynchronize(stream_));
}

// The pinned staging buffer may still be the source of an upload queued earlier: wait for
// that copy (recorded by staging_free_), not for the whole stream.
void CudaBackend::stage_tokens(const int* tokens, size_t count) {
    if (staging_pending_) {
        count_runtime_call();
        CUDA_CHECK(cudaEventSynchronize(staging_free_));
        staging_pending_ = false;
    }
    h_tokens_.reserve(count);  // never inside a capture: staging comes before the step
    std::memcpy(h_tokens_.get(), tokens, count * sizeof(int));
}

void CudaBackend::staging_queued() {
    count_runtime_call();
    CUDA_CHECK(cudaEventRecord(staging_free_, stream_));
    staging_pending_ = true;
}

// ---------------------------------------------------------------------------
// one layer over n positions (prefill): x += Attn(RMSNorm(x)); x += SwiGLU(RMSNorm(x))

void CudaBackend::store_kv(int slot, int n, int p0) {
    // rows (b, t) of k/v go to the slot at (b, p0 + t): cudaMemcpy2D's pitch would be
    // context x kv_dim x 4 bytes, over its 2^31 - 1 limit for long contexts
    const StridedRows rows = kv_store_rows(kv_, slot, n, p0);
    strided_copy_gpu(key_cache_.get(), s_.k.get(), rows);
    strided_copy_gpu(value_cache_.get(), s_.v.get(), rows);
}

void CudaBackend::copy_layer_output(int l, size_t rows) {
    copy_async(layer_pinned_[l]->get(), s_.x.get(), rows * config_.dim * sizeof(float), cudaMemcpyDeviceToHost, stream_);
}

void CudaBackend::run_layer(int l, int n, int p0) {
    const Config& c = config_;
    const GpuWeights& w = w_;
    GpuRunState& s = s_;
    const int rows = batch_ * n, D = c.dim, QD = c.q_dim(), KD = c.kv_dim(), hs = c.head_size();

    rmsnorm_gpu(0, s.xb.get(), s.x.get(), w.rms_att.get() + (size_t)l * D, rows, D, c.norm_eps);
    gemm(0, s.q.get(), s.xb.get(), w.wq.get() + (size_t)l * QD * D, rows, D, QD);
    rope_gpu(s.q.get(), s.positions.get(), rows, c.n_heads, hs, c.rope_theta, RopeStyle::Adjacent);

    const int slot = plan_.kv_slot[l];
    if (plan_.owns_kv(l)) {  // only KV layers compute K and V, and write them to their slot
        gemm(0, s.k.get(), s.xb.get(), w.wk.get() + (size_t)slot * KD * D, rows, D, KD);
        gemm(0, s.v.get(), s.xb.get(), w.wv.get() + (size_t)slot * KD * D, rows, D, KD);
        rope_gpu(s.k.get(), s.positions.get(), rows, c.n_kv_heads, hs, c.rope_theta, RopeStyle::Adjacent);
        store_kv(slot, n, p0);
    }
    // strict (s < p) for an upward source or diag=all, else causal (s <= p): Plan::strict
    attention_prefill_gpu(0, s.att.get(), s.q.get(), key_slot(slot), value_slot(slot), batch_, n, p0, kv_.context,
                          plan_.strict(l), c.n_heads, c.n_kv_heads, hs);
    gemm(0, s.xb.get(), s.att.get(), w.wo.get() + (size_t)l * D * QD, rows, QD, D);
    residual_add_gpu(s.x.get(), s.xb.get(), (size_t)rows * D);

    ffn_block(l, rows);

    if (capture_) copy_layer_output(l, rows);  // debug only
}

// The feed-forward half of layer l over `rows` rows of x, residual included: the same in
// prefill and in the unfused decode step.
void CudaBackend::ffn_block(int l, int rows) {
    const Config& c = config_;
    const GpuWeights& w = w_;
    GpuRunState& s = s_;
    const int D = c.dim, H = c.hidden_dim;
    rmsnorm_gpu(0, s.xb.get(), s.x.get(), w.rms_ffn.get() + (size_t)l * D, rows, D, c.norm_eps);
    gemm(0, s.hb.get(), s.xb.get(), w.w1.get() + (size_t)l * H * D, rows, D, H);
    gemm(0, s.hb2.get(), s.xb.get(), w.w3.get() + (size_t)l * H * D, rows, D, H);
    swiglu_gpu(s.hb.get(), s.hb2.get(), (size_t)rows * H);
    gemm(0, s.xb.get(), s.hb.get(), w.w2.get() + (size_t)l * D * H, rows, H, D);
    residual_add_gpu(s.x.get(), s.xb.get(), (size_t)rows * D);
}

void CudaBackend::run_layers(int first, int last, int n, int p0) {
    for (int l = first; l <= last; l++) run_layer(l, n, p0);
}

// ---------------------------------------------------------------------------
// one layer of a decode step: one new position per sequence, at the counter

// Which positions a decode step's query sees in layer l (decode_kernels.h): the causal or
// strict mask of run_layer, or the authors' zero row under --upward-rule authors.
static int decode_mask(const Plan& plan, int l) { return plan.zero_row_step(l) ? kDecodeZeroRow : plan.strict(l) ? 1 : 0; }

// The unfused step: the ops of run_layer, each its own launch; the position comes from the
// counter (positions_from_counter at the start of the step), not from the host.
void CudaBackend::decode_layer(int l) {
    const Config& c = config_;
    const GpuWeights& w = w_;
    GpuRunState& s = s_;
    const int rows = batch_, D = c.dim, QD = c.q_dim(), KD = c.kv_dim(), hs = c.head_size();

    rmsnorm_gpu(0, s.xb.get(), s.x.get(), w.rms_att.get() + (size_t)l * D, rows, D, c.norm_eps);
    gemm(0, s.q.get(), s.xb.get(), w.wq.get() + (size_t)l * QD * D, rows, D, QD);
    rope_gpu(s.q.get(), s.positions.get(), rows, c.n_heads, hs, c.rope_theta, RopeStyle::Adjacent);
    const int slot = plan_.kv_slot[l];
    if (plan_.owns_kv(l)) {
        gemm(0, s.k.get(), s.xb.get(), w.wk.get() + (size_t)slot * KD * D, rows, D, KD);
        gemm(0, s.v.get(), s.xb.get(), w.wv.get() + (size_t)slot * KD * D, rows, D, KD);
        rope_gpu(s.k.get(), s.positions.get(), rows, c.n_kv_heads, hs, c.rope_theta, RopeStyle::Adjacent);
        store_kv_at_counter_gpu(key_slot(slot), s.k.get(), s.counter.get(), batch_, kv_.context, KD);
        store_kv_at_counter_gpu(value_slot(slot), s.v.get(), s.counter.get(), batch_, kv_.context, KD);
    }
    attention_decode_counter_gpu(s.att.get(), s.q.get(), key_slot(slot), value_slot(slot), s.counter.get(), batch_,
                                 kv_.context, decode_mask(plan_, l), c.n_heads, c.n_kv_heads, hs, s.decode_work.get(),
                                 s.decode_work.size());
    gemm(0, s.xb.get(), s.att.get(), w.wo.get() + (size_t)l * D * QD, rows, QD, D);
    residual_add_gpu(s.x.get(), s.xb.get(), (size_t)rows * D);

    ffn_block(l, rows);

    if (capture_) copy_layer_output(l, rows);
}

// The fused step: 6 launches per layer (cuda/decode_fused.cu, and cuda/decode_attention.cu's
// two) instead of 18 for a KV layer and 13 for a layer that shares. A layer that shares passes
// no W_K, W_V or slot to write: its kernel computes Q only.
void CudaBackend::decode_layer_fused(int l) {
    const Config& c = config_;
    const GpuWeights& w = w_;
    GpuRunState& s = s_;
    const int D = c.dim, QD = c.q_dim(), KD = c.kv_dim(), H = c.hidden_dim, hs = c.head_size();
    const int slot = plan_.kv_slot[l];
    const bool owns = plan_.owns_kv(l);

    decode_qkv_gpu(s.q.get(), owns ? key_slot(slot) : nullptr, owns ? value_slot(slot) : nullptr, s.x.get(),
                   w.rms_att.get() + (size_t)l * D, w.wq.get() + (size_t)l * QD * D,
                   owns ? w.wk.get() + (size_t)slot * KD * D : nullptr, owns ? w.wv.get() + (size_t)slot * KD * D : nullptr,
                   rope_freqs_.get(), s.counter.get(), batch_, D, c.n_heads, c.n_kv_heads, hs, kv_.context, c.norm_eps);
    attention_decode_counter_gpu(s.att.get(), s.q.get(), key_slot(slot), value_slot(slot), s.counter.get(), batch_,
                                 kv_.context, decode_mask(plan_, l), c.n_heads, c.n_kv_heads, hs, s.decode_work.get(),
                                 s.decode_work.size());
    decode_residual_gpu(s.x.get(), s.att.get(), w.wo.get() + (size_t)l * D * QD, batch_, QD, D);
    decode_ffn_up_gpu(s.hb.get(), s.x.get(), w.rms_ffn.get() + (size_t)l * D, w.w1.get() + (size_t)l * H * D,
                      w.w3.get() + (size_t)l * H * D, batch_, D, H, c.norm_eps);
    decode_residual_gpu(s.x.get(), s.hb.get(), w.w2.get() + (size_t)l * D * H, batch_, H, D);

    if (capture_) copy_layer_output(l, batch_);
}

// ---------------------------------------------------------------------------
// a decode step, launch by launch or as a graph

void CudaBackend::enqueue_step(const StepKind& kind) {
    const Config& c = config_;
    if (kind.upload) {
        copy_async(s_.tokens.get(), h_tokens_.get(), (size_t)batch_ * sizeof(int), cudaMemcpyHostToDevice, stream_);
        record_event(staging_free_, stream_);  // the staging buffer is free once its upload is done
    }
    embedding_gpu(s_.x.get(), w_.token_embedding.get(), s_.tokens.get(), batch_, c.dim);
    if (!fused()) positions_from_counter_gpu(s_.positions.get(), s_.counter.get(), batch_);
    for (int l = 0; l < c.n_layers; l++) {
        if (fused()) decode_layer_fused(l);
        else decode_layer(l);
    }
    if (kind.logits || kind.sample) {
        rmsnorm_gpu(0, s_.hidden.get(), s_.x.get(), w_.rms_final.get(), batch_, c.dim, c.norm_eps);
        if (fused()) decode_matvec_gpu(s_.logits.get(), s_.hidden.get(), w_.classifier, batch_, c.dim, c.vocab_size);
        else gemm(0, s_.logits.get(), s_.hidden.get(), w_.classifier, batch_, c.dim, c.vocab_size);
    }
    if (kind.sample) enqueue_sample(kind, s_.logits.get(), (size_t)c.vocab_size);
    advance_counter_gpu(s_.counter.get());
}

void CudaBackend::run_step(const StepKind& kind) {
    if (kind.upload) staging_pending_ = true;  // the step records staging_free_ after its upload
    if (!use_graphs()) return enqueue_step(kind);
    auto it = std::find_if(step_graphs_.begin(), step_graphs_.end(), [&](const StepGraph& g) { return g.kind == kind; });
    if (it != step_graphs_.end() && !it->exec->current()) {  // a buffer moved since the capture
        step_graphs_.erase(it);
        it = step_graphs_.end();
    }
    if (it == step_graphs_.end()) {
        step_graphs_.push_back(StepGraph{kind, capture_graph(stream_, [&] { enqueue_step(kind); })});
        it = step_graphs_.end() - 1;
        last_graph_nodes_ = it->exec->nodes();
    }
    launch_graph(*it->exec, stream_);
}

// ---------------------------------------------------------------------------
// sampling on the device

void CudaBackend::prepare_sample(const SamplingSettings& s, const float* draws) {
    check_sampling(s);
    if (s.greedy()) return;
    for (int b = 0; b < batch_; b++)
        if (!(draws[b] >= 0.0f && draws[b] < 1.0f)) fail("sample: draws must lie in [0, 1)");
    std::memcpy(h_draws_.get(), draws, (size_t)batch_ * sizeof(float));  // free: the last sample has been read
    s_.weights.reserve((size_t)batch_ * config_.vocab_size);  // before any capture
}

CudaBackend::StepKind CudaBackend::sample_kind(const SamplingSettings& s) {
    StepKind k;
    k.sample = s.greedy() ? 1 : 2;
    k.temperature = s.temperature;
    k.topp = s.topp;
    return k;
}

void CudaBackend::enqueue_sample(const StepKind& kind, const float* logits, size_t row_stride) {
    const int V = config_.vocab_size;
    if (kind.sample == 1) {
        argmax_gpu(s_.tokens.get(), logits, row_stride, batch_, V);
    } else {
        copy_async(s_.draws.get(), h_draws_.get(), (size_t)batch_ * sizeof(float), cudaMemcpyHostToDevice, stream_);
        sample_gpu(s_.tokens.get(), logits, row_stride, s_.draws.get(), batch_, V, kind.temperature, kind.topp,
                   s_.weights.get());
    }
    copy_async(h_sampled_.get(), s_.tokens.get(), (size_t)batch_ * sizeof(int), cudaMemcpyDeviceToHost, stream_);
}

void CudaBackend::read_sampled(int* out) {
    std::memcpy(out, h_sampled_.get(), (size_t)batch_ * sizeof(int));
    for (int b = 0; b < batch_; b++)
        if (out[b] < 0) {  // the sampling kernels' mark of a NaN or infinite logit
            sampled_on_device_ = false;  // its -1 is in s_.tokens: no decode_sample from it
            fail("the model's logits are NaN or infinite for sequence " + std::to_string(b) +
                 " (its weights or activations overflow; a model trained with too high a learning rate?)");
        }
    sampled_.assign(out, out + batch_);
    sampled_on_device_ = true;
}

void CudaBackend::sample(const SamplingSettings& s, const float* draws, int* out) {
    LaunchStream on(stream_, &split_);
    if (logit_positions_ < 1) fail("sample: no logits yet (prefill first)");
    prepare_sample(s, draws);
    const size_t P = logit_positions_, V = config_.vocab_size;
    enqueue_sample(sample_kind(s), s_.logits.get() + (P - 1) * V, P * V);  // each sequence's last kept position
    wait();
    read_sampled(out);
}

void CudaBackend::decode_sample(const SamplingSettings& s, const float* draws, int* out) {
    LaunchStream on(stream_, &split_);
    if (!sampled_on_device_) fail("decode_sample: no tokens sampled yet (call sample after the prefill)");
    if (pos_ >= kv_.context) fail("the sequence is full: " + std::to_string(kv_.context) + " tokens of context");
    const double t0 = now_seconds();
    const size_t calls0 = runtime_calls();
    prepare_sample(s, draws);
    StepKind kind = sample_kind(s);
    kind.upload = false;  // the tokens are the last sample's, already in s_.tokens
    run_step(kind);
    const double issued = now_seconds();
    wait();
    // The step ran and advanced the device's counter: count it before reading its sample,
    // which throws on NaN logits (else the host's position falls one behind the device's)
    after_step(1);
    stats_.steps++;
    stats_.host_seconds += issued - t0;
    stats_.runtime_calls += runtime_calls() - calls0;
    read_sampled(out);
}

// ---------------------------------------------------------------------------
// decode and the three prefills

void CudaBackend::after_step(int positions) {
    pos_ += positions;
    rows_ = batch_;
    logit_positions_ = 1;
    host_logits_fresh_ = host_hidden_fresh_ = false;
    layer_out_fresh_ = false;
}

void CudaBackend::decode(const int* tokens) {
    LaunchStream on(stream_, &split_);
    if (pos_ >= kv_.context) fail("the sequence is full: " + std::to_string(kv_.context) + " tokens of context");
    check_tokens(tokens, (size_t)batch_, config_.vocab_size);
    const double t0 = now_seconds();
    const size_t calls0 = runtime_calls();
    stage_tokens(tokens, batch_);
    run_step(StepKind{});
    after_step(1);
    sampled_on_device_ = false;
    stats_.steps++;
    stats_.host_seconds += now_seconds() - t0;
    stats_.runtime_calls += runtime_calls() - calls0;
}

void CudaBackend::embed(const int* tokens, int n, int p0) {
    const Config& c = config_;
    const size_t rows = (size_t)batch_ * n;
    // token ids were checked by prefill or decode
    if (rows > (size_t)INT_MAX) fail("too many tokens in one call: " + std::to_string(rows));
    grow(rows);
    stage_tokens(tokens, rows);
    copy_async(s_.tokens.get(), h_tokens_.get(), rows * sizeof(int), cudaMemcpyHostToDevice, stream_);
    staging_queued();
    prefill_positions_gpu(s_.positions.get(), batch_, n, p0);
    embedding_gpu(s_.x.get(), w_.token_embedding.get(), s_.tokens.get(), (int)rows, c.dim);
    rows_ = (int)rows;
}

void CudaBackend::finish(int n, bool all_positions) {
    const Config& c = config_;
    const int keep = all_positions ? n : 1;
    const size_t out_rows = (size_t)batch_ * keep;
    s_.hidden.reserve(out_rows * c.dim);
    s_.logits.reserve(out_rows * c.vocab_size);
    const float* x = s_.x.get();
    if (keep == 1 && n > 1) {  // the last position of each sequence, gathered into xb
        strided_copy_gpu(s_.xb.get(), s_.x.get(), last_position_rows(batch_, n, c.dim));
        x = s_.xb.get();
    }
    rmsnorm_gpu(0, s_.hidden.get(), x, w_.rms_final.get(), (int)out_rows, c.dim, c.norm_eps);
    gemm(0, s_.logits.get(), s_.hidden.get(), w_.classifier, (int)out_rows, c.dim, c.vocab_size);
    logit_positions_ = keep;
    host_logits_fresh_ = host_hidden_fresh_ = false;
}

void CudaBackend::prefill(const int* tokens, int n, const PrefillOptions& opt) {
    LaunchStream on(stream_, &split_);
    const Config& c = config_;
    const Plan& plan = plan_;
    check_prefill(tokens, batch_, n, kv_.context, c.vocab_size, opt);
    pos_ = 0;
    sampled_on_device_ = false;
    layer_out_fresh_ = false;

    if (prefill_token_by_token(plan, n, opt)) {
        if (opt.all_positions) {
            s_.all_logits.reserve((size_t)batch_ * n * c.vocab_size);
            s_.all_hidden.reserve((size_t)batch_ * n * c.dim);
        }
        set_counter_gpu(s_.counter.get(), 0);
        std::vector<int> column(batch_);
        for (int t = 0; t < n; t++) {
            for (int b = 0; b < batch_; b++) column[b] = tokens[(size_t)b * n + t];
            stage_tokens(column.data(), batch_);
            StepKind kind;
            kind.logits = opt.all_positions || t == n - 1;  // the classifier only where kept
            run_step(kind);
            after_step(1);
            if (!opt.all_positions) continue;
            strided_copy_gpu(s_.all_logits.get(), s_.logits.get(), column_rows(batch_, n, t, c.vocab_size));
            strided_copy_gpu(s_.all_hidden.get(), s_.hidden.get(), column_rows(batch_, n, t, c.dim));
        }
        if (opt.all_positions) {
            s_.logits.swap(s_.all_logits);
            s_.hidden.swap(s_.all_hidden);
            logit_positions_ = n;
        }
        return;
    }

    embed(tokens, n, 0);
    const size_t x_bytes = (size_t)batch_ * n * c.dim * sizeof(float);
    int next = 0;  // first layer not yet run
    for (size_t bi = 0; bi < plan.blocks.size(); bi++) {
        const Block& blk = plan.blocks[bi];
        run_layers(next, blk.first - 1, n, 0);
        copy_async(s_.block_input.get(), s_.x.get(), x_bytes, cudaMemcpyDeviceToDevice, stream_);
        // iteration 1 reads zeros for K/V not computed yet: positions 0..n-1 of every slot
        // the block writes, in every sequence
        for (int l = blk.first; l <= blk.last; l++)
            if (plan.owns_kv(l)) {
                const StridedRows rows = kv_store_rows(kv_, plan.kv_slot[l], n, 0);
                strided_fill_gpu(key_cache_.get(), 0.0f, rows);
                strided_fill_gpu(value_cache_.get(), 0.0f, rows);
            }
        // iteration k reads the upper K/V that iteration k-1 wrote to the cache; keep the last
        auto iteration = [&] {
            copy_async(s_.x.get(), s_.block_input.get(), x_bytes, cudaMemcpyDeviceToDevice, stream_);
            run_layers(blk.first, blk.last, n, 0);
        };
        if (use_graphs()) {
            const GraphExec& g = block_graph((int)bi, n, iteration);
            for (int it = 0; it < opt.iterations; it++) launch_graph(g, stream_);
        } else {
            for (int it = 0; it < opt.iterations; it++) iteration();
        }
        next = blk.last + 1;
    }
    run_layers(next, c.n_layers - 1, n, 0);
    finish(n, opt.all_positions);
    set_counter_gpu(s_.counter.get(), n);  // decode continues at position n
    pos_ = n;
}

template <class Iteration>
const GraphExec& CudaBackend::block_graph(int block, int n, Iteration iteration) {
    auto it = std::find_if(block_graphs_.begin(), block_graphs_.end(),
                           [&](const BlockGraph& g) { return g.block == block && g.n == n; });
    if (it != block_graphs_.end() && it->exec->current()) return *it->exec;
    if (it != block_graphs_.end()) block_graphs_.erase(it);
    block_graphs_.push_back(BlockGraph{block, n, capture_graph(stream_, iteration)});
    return *block_graphs_.back().exec;
}

// ---------------------------------------------------------------------------
// results back to the host

// The kept positions' rows (batch, logit_positions, width), copied once per call that made them.
const float* CudaBackend::to_host(PinnedArray<float>& host, bool& fresh, const float* device, size_t n) {
    if (!fresh) {
        host.reserve(n);
        copy_async(host.get(), device, n * sizeof(float), cudaMemcpyDeviceToHost, stream_);
        wait();
        fresh = true;
    }
    return host.get();
}

const float* CudaBackend::logits() {
    return to_host(host_logits_, host_logits_fresh_, s_.logits.get(), (size_t)batch_ * logit_positions_ * config_.vocab_size);
}

const float* CudaBackend::hidden() {
    return to_host(host_hidden_, host_hidden_fresh_, s_.hidden.get(), (size_t)batch_ * logit_positions_ * config_.dim);
}

void CudaBackend::read_kv(int layer, std::vector<float>& k, std::vector<float>& v) {
    if (layer < 0 || layer >= config_.n_layers) fail("read_kv: no layer " + std::to_string(layer));
    const int slot = plan_.kv_slot[layer];
    const size_t per = (size_t)pos_ * kv_.kv_dim;  // one sequence's rows
    k.resize(batch_ * per);
    v.resize(batch_ * per);
    if (per == 0) return;
    wait();
    // one copy per sequence: as one strided copy, the pitch (context x kv_dim x 4 bytes)
    // could pass cudaMemcpy2D's limit
    for (int b = 0; b < batch_; b++) {
        CUDA_CHECK(cudaMemcpy(k.data() + b * per, key_slot(slot) + kv_.offset(0, b, 0), per * sizeof(float), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(v.data() + b * per, value_slot(slot) + kv_.offset(0, b, 0), per * sizeof(float), cudaMemcpyDeviceToHost));
    }
}

std::vector<float> CudaBackend::residual() const {
    std::vector<float> x((size_t)rows_ * config_.dim);
    wait();
    if (!x.empty()) CUDA_CHECK(cudaMemcpy(x.data(), s_.x.get(), x.size() * sizeof(float), cudaMemcpyDeviceToHost));
    return x;
}

void CudaBackend::capture_layers(bool on) {
    wait();  // queued copies may still write the buffers freed next
    capture_ = on;
    layer_pinned_.clear();  // bumps buffer_generation: a graph that copies into them is captured again
    layer_out_.assign(on ? config_.n_layers : 0, {});
    layer_out_fresh_ = false;
    if (!on) return;
    for (int l = 0; l < config_.n_layers; l++) {
        layer_pinned_.push_back(std::make_unique<PinnedArray<float>>());
        layer_pinned_.back()->reserve(s_.x.size());  // the rows grow() has made room for so far
    }
}

const std::vector<std::vector<float>>& CudaBackend::layer_outputs() const {
    if (capture_ && !layer_out_fresh_) {
        wait();
        const size_t n = (size_t)rows_ * config_.dim;
        for (int l = 0; l < config_.n_layers; l++) layer_out_[l].assign(layer_pinned_[l]->get(), layer_pinned_[l]->get() + n);
        layer_out_fresh_ = true;
    }
    return layer_out_;
}
