// Host-vector wrappers for the decode kernel tests (see decode_check.h).
#include "cuda/decode_check.h"
#include "cuda/check.h"
#include "cuda/decode_kernels.h"
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace {

constexpr size_t GUARD = 64;  // elements on each side

// A device array inside guard zones; everything starts as 0xFF bytes (NaN as floats).
template <class T>
class Guarded {
public:
    explicit Guarded(size_t n) : n_(n), total_(n + 2 * GUARD) {
        CUDA_CHECK(cudaMalloc(&base_, total_ * sizeof(T)));
        CUDA_CHECK(cudaMemset(base_, 0xFF, total_ * sizeof(T)));
    }
    explicit Guarded(const std::vector<T>& v) : Guarded(v.size()) { upload(v); }
    ~Guarded() {
        const cudaError_t err = cudaFree(base_);
        if (err != cudaSuccess) std::fprintf(stderr, "cudaFree: %s\n", cudaGetErrorString(err));
    }
    Guarded(const Guarded&) = delete;
    Guarded& operator=(const Guarded&) = delete;
    T* data() { return base_ + GUARD; }
    void upload(const std::vector<T>& v) {
        if (v.size() != n_) throw std::runtime_error("decode_check: input size mismatch");
        if (n_ > 0) CUDA_CHECK(cudaMemcpy(data(), v.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
    }
    // The data, after checking that the guard zones still hold 0xFF bytes.
    std::vector<T> download(const char* what) {
        std::vector<T> all(total_);
        CUDA_CHECK(cudaMemcpy(all.data(), base_, total_ * sizeof(T), cudaMemcpyDeviceToHost));
        const unsigned char* bytes = reinterpret_cast<const unsigned char*>(all.data());
        for (size_t i = 0; i < total_ * sizeof(T); i++)
            if ((i < GUARD * sizeof(T) || i >= (GUARD + n_) * sizeof(T)) && bytes[i] != 0xFF)
                throw std::runtime_error(std::string(what) + ": the kernel wrote outside its output");
        return std::vector<T>(all.begin() + GUARD, all.begin() + GUARD + n_);
    }

private:
    T* base_ = nullptr;
    size_t n_, total_;
};

void finish() {
    CUDA_CHECK_LAST();
    CUDA_CHECK(cudaDeviceSynchronize());
}

void expect_size(const char* what, size_t got, size_t want) {
    if (got != want)
        throw std::runtime_error(std::string(what) + ": " + std::to_string(got) + " elements, expected " + std::to_string(want));
}

}  // namespace

QkvOut check_decode_qkv(const std::vector<float>& x, const std::vector<float>& norm_weight, const std::vector<float>& wq,
                        const std::vector<float>& wk, const std::vector<float>& wv, const std::vector<float>& cache_in,
                        int batch, int dim, int n_heads, int n_kv_heads, int head_size, int context, int pos,
                        float theta, float eps, int split) {
    const bool owns = !wk.empty();
    const int q_dim = n_heads * head_size, kv_dim = n_kv_heads * head_size;
    expect_size("check_decode_qkv x", x.size(), (size_t)batch * dim);
    expect_size("check_decode_qkv wq", wq.size(), (size_t)q_dim * dim);
    if (owns) {
        expect_size("check_decode_qkv wk", wk.size(), (size_t)kv_dim * dim);
        expect_size("check_decode_qkv wv", wv.size(), (size_t)kv_dim * dim);
    }
    expect_size("check_decode_qkv cache", cache_in.size(), (size_t)batch * context * kv_dim);
    std::vector<float> freqs(head_size / 2);
    for (int i = 0; i < head_size / 2; i++) freqs[i] = 1.0f / powf(theta, (float)(2 * i) / (float)head_size);
    Guarded<float> dx(x), dg(norm_weight), dwq(wq), dwk(wk), dwv(wv), dfreq(freqs), kc(cache_in), vc(cache_in);
    Guarded<float> dq((size_t)batch * q_dim);
    Guarded<int> counter(std::vector<int>{pos});
    decode_qkv_gpu(dq.data(), owns ? kc.data() : nullptr, owns ? vc.data() : nullptr, dx.data(), dg.data(), dwq.data(),
                   owns ? dwk.data() : nullptr, owns ? dwv.data() : nullptr, dfreq.data(), counter.data(), batch, dim,
                   n_heads, n_kv_heads, head_size, context, eps, split);
    finish();
    dx.download("decode_qkv (x)");
    return QkvOut{dq.download("decode_qkv (q)"), kc.download("decode_qkv (key cache)"), vc.download("decode_qkv (value cache)")};
}

std::vector<float> check_decode_ffn_up(const std::vector<float>& x, const std::vector<float>& norm_weight,
                                       const std::vector<float>& w1, const std::vector<float>& w3, int batch, int dim,
                                       int hidden, float eps, int split) {
    expect_size("check_decode_ffn_up x", x.size(), (size_t)batch * dim);
    expect_size("check_decode_ffn_up w1", w1.size(), (size_t)hidden * dim);
    expect_size("check_decode_ffn_up w3", w3.size(), (size_t)hidden * dim);
    Guarded<float> dx(x), dg(norm_weight), d1(w1), d3(w3), dhb((size_t)batch * hidden);
    decode_ffn_up_gpu(dhb.data(), dx.data(), dg.data(), d1.data(), d3.data(), batch, dim, hidden, eps, split);
    finish();
    return dhb.download("decode_ffn_up");
}

std::vector<float> check_decode_residual(const std::vector<float>& x, const std::vector<float>& in,
                                         const std::vector<float>& w, int batch, int k, int d, int split) {
    expect_size("check_decode_residual x", x.size(), (size_t)batch * d);
    expect_size("check_decode_residual in", in.size(), (size_t)batch * k);
    expect_size("check_decode_residual w", w.size(), (size_t)d * k);
    Guarded<float> dx(x), din(in), dw(w);
    decode_residual_gpu(dx.data(), din.data(), dw.data(), batch, k, d, split);
    finish();
    din.download("decode_residual (in)");
    return dx.download("decode_residual");
}

std::vector<float> check_decode_matvec(const std::vector<float>& in, const std::vector<float>& w, int batch, int k, int d,
                                       int split) {
    expect_size("check_decode_matvec in", in.size(), (size_t)batch * k);
    expect_size("check_decode_matvec w", w.size(), (size_t)d * k);
    Guarded<float> din(in), dw(w), dout((size_t)batch * d);
    decode_matvec_gpu(dout.data(), din.data(), dw.data(), batch, k, d, split);
    finish();
    return dout.download("decode_matvec");
}

std::vector<float> check_attention_decode_counter(const std::vector<float>& q, const std::vector<float>& k,
                                                  const std::vector<float>& v, int batch, int pos, int context, int mask,
                                                  int n_heads, int n_kv_heads, int head_size) {
    const size_t q_floats = (size_t)batch * n_heads * head_size, kv_floats = (size_t)batch * context * n_kv_heads * head_size;
    expect_size("check_attention_decode_counter q", q.size(), q_floats);
    expect_size("check_attention_decode_counter k", k.size(), kv_floats);
    expect_size("check_attention_decode_counter v", v.size(), kv_floats);
    const size_t ws = attention_decode_counter_workspace_floats(batch, context, n_heads, n_kv_heads, head_size);
    Guarded<float> dq(q), dk(k), dv(v), dout(q_floats), workspace(ws);
    Guarded<int> counter(std::vector<int>{pos});
    attention_decode_counter_gpu(dout.data(), dq.data(), dk.data(), dv.data(), counter.data(), batch, context, mask,
                                 n_heads, n_kv_heads, head_size, workspace.data(), ws);
    finish();
    workspace.download("attention decode (counter) workspace");
    return dout.download("attention decode (counter)");
}

std::vector<int> check_sample(const std::vector<float>& logits, size_t row_stride, int batch, int vocab, float temperature,
                              float topp, const std::vector<float>& draws) {
    if (batch > 0 && logits.size() < (batch - 1) * row_stride + vocab) throw std::runtime_error("check_sample: logits too short");
    Guarded<float> dl(logits), dd(draws);
    Guarded<int> out((size_t)batch);
    Guarded<uint32_t> scratch((size_t)batch * vocab);
    if (temperature == 0.0f) argmax_gpu(out.data(), dl.data(), row_stride, batch, vocab);
    else sample_gpu(out.data(), dl.data(), row_stride, dd.data(), batch, vocab, temperature, topp, scratch.data());
    finish();
    dl.download("sample (logits)");
    return out.download("sample");
}

std::vector<float> check_store_kv_at_counter(const std::vector<float>& slot, const std::vector<float>& rows, int batch,
                                             int context, int kv_dim, int pos) {
    expect_size("check_store_kv_at_counter slot", slot.size(), (size_t)batch * context * kv_dim);
    expect_size("check_store_kv_at_counter rows", rows.size(), (size_t)batch * kv_dim);
    Guarded<float> ds(slot), dr(rows);
    Guarded<int> counter(std::vector<int>{pos});
    store_kv_at_counter_gpu(ds.data(), dr.data(), counter.data(), batch, context, kv_dim);
    finish();
    return ds.download("store_kv_at_counter");
}

std::vector<float> check_strided_fill(const std::vector<float>& dst, float value, const StridedRows& r) {
    if (r.dst_span() > dst.size()) throw std::runtime_error("check_strided_fill: rows outside the array");
    Guarded<float> dd(dst);
    strided_fill_gpu(dd.data(), value, r);
    finish();
    return dd.download("strided fill");
}

PositionsCheck check_positions(int counter, int rows, int batch, int n, int p0) {
    Guarded<int> c(1), from((size_t)rows), prefill((size_t)batch * n);
    set_counter_gpu(c.data(), counter);
    advance_counter_gpu(c.data());
    positions_from_counter_gpu(from.data(), c.data(), rows);
    prefill_positions_gpu(prefill.data(), batch, n, p0);
    finish();
    PositionsCheck r;
    r.counter = c.download("counter")[0];
    r.from_counter = from.download("positions from the counter");
    r.prefill = prefill.download("prefill positions");
    return r;
}

std::vector<float> check_strided_copy(const std::vector<float>& dst, const std::vector<float>& src, const StridedRows& r) {
    if (r.src_span() > src.size() || r.dst_span() > dst.size()) throw std::runtime_error("check_strided_copy: rows outside the arrays");
    Guarded<float> dd(dst), ds(src);
    strided_copy_gpu(dd.data(), ds.data(), r);
    finish();
    ds.download("strided copy (src)");
    return dd.download("strided copy");
}

long long device_kernels_finished() {
#ifdef KVS_EMU
    return (long long)kvs_emu::kernels_finished();
#else
    return -1;
#endif
}

std::vector<std::string> device_kernel_names_since() {
#ifdef KVS_EMU
    return kvs_emu::kernel_names_since();
#else
    return {};
#endif
}

GraphCheck check_graph_capture() {
    GraphCheck r;
    cudaStream_t stream = nullptr;
    CUDA_CHECK(cudaStreamCreate(&stream));
    Guarded<int> counter(std::vector<int>{0});
    Guarded<float> src(std::vector<float>(8, 1.0f)), dst(std::vector<float>(8, 0.0f));
    float* host = nullptr;  // pinned, so that a graph may copy from it
    CUDA_CHECK(cudaMallocHost(&host, 8 * sizeof(float)));
    {
        LaunchStream on(stream);
        // capture: two advances and a copy from pinned memory, recorded, not run
        CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        advance_counter_gpu(counter.data());
        advance_counter_gpu(counter.data());
        CUDA_CHECK(cudaMemcpyAsync(dst.data(), host, 8 * sizeof(float), cudaMemcpyHostToDevice, stream));
        cudaGraph_t graph = nullptr;
        CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
        CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &r.nodes));
        cudaGraphExec_t exec = nullptr;
        CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
        CUDA_CHECK(cudaGraphDestroy(graph));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        r.counter_after_capture = counter.download("counter")[0];
        r.copied = true;
        for (int rep = 1; rep <= 3; rep++) {  // the copy reads the pinned memory at each replay
            for (int i = 0; i < 8; i++) host[i] = (float)(rep * 10 + i);
            CUDA_CHECK(cudaGraphLaunch(exec, stream));
            CUDA_CHECK(cudaStreamSynchronize(stream));
            const std::vector<float> got = dst.download("graph copy");
            for (int i = 0; i < 8; i++) r.copied = r.copied && got[i] == (float)(rep * 10 + i);
        }
        r.counter_after_replays = counter.download("counter")[0];
        CUDA_CHECK(cudaGraphExecDestroy(exec));

        // a synchronous copy inside a capture is refused, and the capture is invalidated
        CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        advance_counter_gpu(counter.data());
        float one = 0.0f;
        r.sync_copy_refused = cudaMemcpy(&one, src.data(), sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess;
        cudaGetLastError();
        graph = nullptr;
        r.invalidated = cudaStreamEndCapture(stream, &graph) != cudaSuccess && graph == nullptr;
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();

        // work on the legacy default stream during a capture is refused
        CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        {
            LaunchStream legacy(nullptr);
            bool threw = false;
            try {
                advance_counter_gpu(counter.data());
            } catch (const std::exception&) {
                threw = true;
            }
            r.legacy_refused = threw;
        }
        graph = nullptr;
        cudaStreamEndCapture(stream, &graph);
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();
    }
    CUDA_CHECK(cudaFreeHost(host));
    CUDA_CHECK(cudaStreamDestroy(stream));
    return r;
}
