// The GPU forward pass (DESIGN.md sections 1 and 2), step for step the CPU reference of
// reference/forward.cpp on the kernels of cuda/kernels.h:
//
//   embed -> for each layer: x += Attn(RMSNorm(x)) over the source's cache slot,
//                            x += SwiGLU(RMSNorm(x))
//         -> final RMSNorm -> classifier
//
// Everything stays on the device between the token upload and the result download: a
// cyclic block's iterations restore the block's entry residual with a device copy, clear
// the upward K/V with a device memset and write each iteration's K/V straight into the
// cache, so no data goes back to the host inside the loop. Every launch goes to the
// default stream, so the order of launches and copies is the order of the code.
#include "cuda/check.h"
#include "cuda/forward.h"
#include "cuda/kernels.h"
#include "src/util.h"
#include <climits>

std::unique_ptr<Backend> make_cuda_backend(const Model& m, int batch, int context) {
    return std::make_unique<CudaBackend>(m, batch, context);
}

// ---------------------------------------------------------------------------
// device arrays

template <typename T>
DeviceArray<T>::~DeviceArray() {
    // No CUDA_CHECK: a destructor must not throw, and at exit the context may be gone.
    if (p_) cudaFree(p_);
}

template <typename T>
void DeviceArray<T>::reserve(size_t n) {
    if (n <= n_) return;
    if (p_) CUDA_CHECK(cudaFree(p_));  // the contents go anyway: free first, lower peak
    p_ = nullptr;
    n_ = 0;
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

template class DeviceArray<float>;
template class DeviceArray<int>;

// ---------------------------------------------------------------------------
// setup: checks, weights, cache

static void expect_floats(const Tensor& t, size_t want, const char* name) {
    if (t.size() != want)
        fail(std::string("CUDA forward: weight ") + name + " has " + std::to_string(t.size()) + " floats, the config and plan need " +
             std::to_string(want));
}

CudaBackend::CudaBackend(const Model& m, int batch, int context) : config_(m.config), plan_(m.plan), batch_(batch) {
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

    // the cache: KV layers only, zeros like the CPU's
    kv_ = KVLayout{plan_.n_kv_layers(), batch, context, c.kv_dim()};
    key_cache_.reserve(kv_.floats());
    value_cache_.reserve(kv_.floats());
    key_cache_.zero();
    value_cache_.zero();
    s_.decode_work.reserve(attention_decode_workspace_floats(batch, context, c.n_heads, c.head_size()));
    grow(batch);
}

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
}

// ---------------------------------------------------------------------------
// one layer: x += Attn(RMSNorm(x)) over the source's cache; x += SwiGLU(RMSNorm(x))

void CudaBackend::store_kv(int slot, int n, int p0) {
    // rows (b, t) of k/v go to the slot at (b, p0 + t): one strided copy per tensor
    const size_t row_bytes = (size_t)kv_.kv_dim * sizeof(float);
    const size_t width = (size_t)n * row_bytes, dst_pitch = (size_t)kv_.context * row_bytes;
    CUDA_CHECK(cudaMemcpy2DAsync(key_cache_.get() + kv_.offset(slot, 0, p0), dst_pitch, s_.k.get(), width, width, batch_,
                                 cudaMemcpyDeviceToDevice, 0));
    CUDA_CHECK(cudaMemcpy2DAsync(value_cache_.get() + kv_.offset(slot, 0, p0), dst_pitch, s_.v.get(), width, width, batch_,
                                 cudaMemcpyDeviceToDevice, 0));
}

void CudaBackend::run_layer(int l, int n, int p0) {
    const Config& c = config_;
    const GpuWeights& w = w_;
    GpuRunState& s = s_;
    const int rows = batch_ * n, D = c.dim, QD = c.q_dim(), KD = c.kv_dim(), H = c.hidden_dim, hs = c.head_size();

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
    if (n == 1)
        attention_decode_gpu(0, s.att.get(), s.q.get(), key_slot(slot), value_slot(slot), batch_, p0, kv_.context,
                             plan_.strict(l), c.n_heads, c.n_kv_heads, hs, s.decode_work.get(), s.decode_work.size());
    else
        attention_prefill_gpu(0, s.att.get(), s.q.get(), key_slot(slot), value_slot(slot), batch_, n, p0, kv_.context,
                              plan_.strict(l), c.n_heads, c.n_kv_heads, hs);
    gemm(0, s.xb.get(), s.att.get(), w.wo.get() + (size_t)l * D * QD, rows, QD, D);
    residual_add_gpu(s.x.get(), s.xb.get(), (size_t)rows * D);

    rmsnorm_gpu(0, s.xb.get(), s.x.get(), w.rms_ffn.get() + (size_t)l * D, rows, D, c.norm_eps);
    gemm(0, s.hb.get(), s.xb.get(), w.w1.get() + (size_t)l * H * D, rows, D, H);
    gemm(0, s.hb2.get(), s.xb.get(), w.w3.get() + (size_t)l * H * D, rows, D, H);
    swiglu_gpu(s.hb.get(), s.hb2.get(), (size_t)rows * H);
    gemm(0, s.xb.get(), s.hb.get(), w.w2.get() + (size_t)l * D * H, rows, H, D);
    residual_add_gpu(s.x.get(), s.xb.get(), (size_t)rows * D);

    if (capture_) {  // debug only: a host copy (and a sync) per layer
        layer_out_[l].resize((size_t)rows * D);
        CUDA_CHECK(cudaMemcpy(layer_out_[l].data(), s.x.get(), (size_t)rows * D * sizeof(float), cudaMemcpyDeviceToHost));
    }
}

void CudaBackend::run_layers(int first, int last, int n, int p0) {
    for (int l = first; l <= last; l++) run_layer(l, n, p0);
}

void CudaBackend::embed(const int* tokens, int n, int p0) {
    const Config& c = config_;
    const size_t rows = (size_t)batch_ * n;
    // token ids were checked by prefill or decode
    if (rows > (size_t)INT_MAX) fail("too many tokens in one call: " + std::to_string(rows));
    grow(rows);
    std::vector<int> positions(rows);
    for (size_t r = 0; r < rows; r++) positions[r] = p0 + (int)(r % n);
    CUDA_CHECK(cudaMemcpy(s_.tokens.get(), tokens, rows * sizeof(int), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(s_.positions.get(), positions.data(), rows * sizeof(int), cudaMemcpyHostToDevice));
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
        const size_t row_bytes = (size_t)c.dim * sizeof(float);
        CUDA_CHECK(cudaMemcpy2DAsync(s_.xb.get(), row_bytes, s_.x.get() + (size_t)(n - 1) * c.dim, (size_t)n * row_bytes,
                                     row_bytes, batch_, cudaMemcpyDeviceToDevice, 0));
        x = s_.xb.get();
    }
    rmsnorm_gpu(0, s_.hidden.get(), x, w_.rms_final.get(), (int)out_rows, c.dim, c.norm_eps);
    gemm(0, s_.logits.get(), s_.hidden.get(), w_.classifier, (int)out_rows, c.dim, c.vocab_size);
    logit_positions_ = keep;
    host_logits_fresh_ = host_hidden_fresh_ = false;
}

// ---------------------------------------------------------------------------
// decode and the three prefills

void CudaBackend::decode(const int* tokens) {
    if (pos_ >= kv_.context)
        fail("the sequence is full: " + std::to_string(kv_.context) + " tokens of context");
    check_tokens(tokens, (size_t)batch_, config_.vocab_size);
    step(tokens, true);
}

void CudaBackend::step(const int* tokens, bool with_logits) {
    embed(tokens, 1, pos_);
    run_layers(0, config_.n_layers - 1, 1, pos_);
    if (with_logits) finish(1, false);
    pos_++;
}

// Copies a (batch, width) result into column t of a (batch, n, width) array.
static void copy_column(float* dst, const float* src, int t, int n, int width, int batch) {
    const size_t row_bytes = (size_t)width * sizeof(float);
    CUDA_CHECK(cudaMemcpy2DAsync(dst + (size_t)t * width, (size_t)n * row_bytes, src, row_bytes, row_bytes, batch,
                                 cudaMemcpyDeviceToDevice, 0));
}

void CudaBackend::prefill(const int* tokens, int n, const PrefillOptions& opt) {
    const Config& c = config_;
    const Plan& plan = plan_;
    check_prefill(tokens, batch_, n, kv_.context, c.vocab_size, opt);
    pos_ = 0;

    if (prefill_token_by_token(plan, n, opt)) {
        if (opt.all_positions) {
            s_.all_logits.reserve((size_t)batch_ * n * c.vocab_size);
            s_.all_hidden.reserve((size_t)batch_ * n * c.dim);
        }
        std::vector<int> column(batch_);
        for (int t = 0; t < n; t++) {
            for (int b = 0; b < batch_; b++) column[b] = tokens[(size_t)b * n + t];
            step(column.data(), opt.all_positions || t == n - 1);  // the classifier only where kept
            if (!opt.all_positions) continue;
            copy_column(s_.all_logits.get(), s_.logits.get(), t, n, c.vocab_size, batch_);
            copy_column(s_.all_hidden.get(), s_.hidden.get(), t, n, c.dim, batch_);
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
    const size_t kv_row_bytes = (size_t)kv_.kv_dim * sizeof(float);
    int next = 0;  // first layer not yet run
    for (const Block& blk : plan.blocks) {
        run_layers(next, blk.first - 1, n, 0);
        CUDA_CHECK(cudaMemcpyAsync(s_.block_input.get(), s_.x.get(), x_bytes, cudaMemcpyDeviceToDevice, 0));
        // iteration 1 reads zeros for K/V not computed yet: positions 0..n-1 of every slot
        // the block writes, in every sequence
        for (int l = blk.first; l <= blk.last; l++)
            if (plan.owns_kv(l)) {
                const int slot = plan.kv_slot[l];
                const size_t pitch = (size_t)kv_.context * kv_row_bytes, width = (size_t)n * kv_row_bytes;
                CUDA_CHECK(cudaMemset2DAsync(key_slot(slot), pitch, 0, width, batch_, 0));
                CUDA_CHECK(cudaMemset2DAsync(value_slot(slot), pitch, 0, width, batch_, 0));
            }
        // iteration k reads the upper K/V that iteration k-1 wrote to the cache; keep the last
        for (int it = 0; it < opt.iterations; it++) {
            CUDA_CHECK(cudaMemcpyAsync(s_.x.get(), s_.block_input.get(), x_bytes, cudaMemcpyDeviceToDevice, 0));
            run_layers(blk.first, blk.last, n, 0);
        }
        next = blk.last + 1;
    }
    run_layers(next, c.n_layers - 1, n, 0);
    finish(n, opt.all_positions);
    pos_ = n;
}

// ---------------------------------------------------------------------------
// results back to the host

// The kept positions' rows (batch, logit_positions, width), copied once per call that made them.
static const float* to_host(std::vector<float>& host, bool& fresh, const float* device, size_t n) {
    if (!fresh) {
        host.resize(n);
        if (n > 0) CUDA_CHECK(cudaMemcpy(host.data(), device, n * sizeof(float), cudaMemcpyDeviceToHost));
        fresh = true;
    }
    return host.data();
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
    const size_t width = per * sizeof(float), src_pitch = (size_t)kv_.context * kv_.kv_dim * sizeof(float);
    CUDA_CHECK(cudaMemcpy2D(k.data(), width, key_slot(slot), src_pitch, width, batch_, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy2D(v.data(), width, value_slot(slot), src_pitch, width, batch_, cudaMemcpyDeviceToHost));
}

std::vector<float> CudaBackend::residual() const {
    std::vector<float> x((size_t)rows_ * config_.dim);
    if (!x.empty()) CUDA_CHECK(cudaMemcpy(x.data(), s_.x.get(), x.size() * sizeof(float), cudaMemcpyDeviceToHost));
    return x;
}

void CudaBackend::capture_layers(bool on) {
    capture_ = on;
    layer_out_.assign(on ? config_.n_layers : 0, {});
}
