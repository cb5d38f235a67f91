// Host-vector wrappers for the kernel tests (see kernel_check.h).
#include "cuda/kernel_check.h"
#include "cuda/check.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace {

constexpr size_t GUARD = 64;  // elements on each side; keeps the data 256-byte aligned

// A device array of n elements (starting `offset` elements past an aligned address) inside
// guard zones. Everything starts as 0xFF bytes: a NaN as a float.
template <class T>
class Guarded {
public:
    explicit Guarded(size_t n, int offset = 0) : n_(n), off_((size_t)offset), total_(n + 2 * GUARD + (size_t)offset) {
        CUDA_CHECK(cudaMalloc(&base_, total_ * sizeof(T)));
        CUDA_CHECK(cudaMemset(base_, 0xFF, total_ * sizeof(T)));
    }
    ~Guarded() {
        cudaError_t err = cudaFree(base_);  // no throwing from a destructor: report instead
        if (err != cudaSuccess) std::fprintf(stderr, "cudaFree: %s\n", cudaGetErrorString(err));
    }
    Guarded(const Guarded&) = delete;
    Guarded& operator=(const Guarded&) = delete;

    T* data() { return base_ + GUARD + off_; }
    void upload(const std::vector<T>& v) {
        if (v.size() != n_) throw std::runtime_error("kernel_check: input of " + std::to_string(v.size()) +
                                                     " elements, expected " + std::to_string(n_));
        CUDA_CHECK(cudaMemcpy(data(), v.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
    }
    // Copies the data back and checks that the guard zones still hold 0xFF bytes.
    std::vector<T> download(const char* what) {
        std::vector<T> all(total_);
        CUDA_CHECK(cudaMemcpy(all.data(), base_, total_ * sizeof(T), cudaMemcpyDeviceToHost));
        const unsigned char* bytes = reinterpret_cast<const unsigned char*>(all.data());
        const size_t lo = (GUARD + off_) * sizeof(T), hi = lo + n_ * sizeof(T);
        for (size_t i = 0; i < total_ * sizeof(T); i++)
            if ((i < lo || i >= hi) && bytes[i] != 0xFF)
                throw std::runtime_error(std::string(what) + ": the kernel wrote outside its output");
        return std::vector<T>(all.begin() + GUARD + off_, all.begin() + GUARD + off_ + n_);
    }

private:
    T* base_ = nullptr;
    size_t n_, off_, total_;
};

void expect_size(const char* what, size_t got, size_t want) {
    if (got != want)
        throw std::runtime_error(std::string(what) + ": " + std::to_string(got) + " elements, expected " + std::to_string(want));
}

void finish() {
    CUDA_CHECK_LAST();
    CUDA_CHECK(cudaDeviceSynchronize());  // errors inside the kernel surface here
}

// For the test of KVSHARE_CUDA_SYNC: a kernel that faults when asked to.
__global__ void fault_kernel(int fault) {
    if (fault) __trap();
}

void launch_fault_kernel(int fault, int threads) {
    fault_kernel<<<1, threads, 0, kvk::launch_stream()>>>(fault);
    CUDA_CHECK_LAST("fault_kernel");
}

// The error message of `work`, or "" when it throws none.
template <class Work>
std::string error_of(Work work) {
    try {
        work();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

}  // namespace

namespace {
template <class Launch>  // launch(out, x, w) on device pointers
std::vector<float> checked_gemm(const Launch& launch, const std::vector<float>& x, const std::vector<float>& w, int n,
                                int k, int d, int offset) {
    expect_size("check_gemm x", x.size(), (size_t)n * k);
    expect_size("check_gemm w", w.size(), (size_t)d * k);
    Guarded<float> dx(x.size(), offset), dw(w.size(), offset), dout((size_t)n * d);
    dx.upload(x);
    dw.upload(w);
    launch(dout.data(), dx.data(), dw.data());
    finish();
    dx.download("gemm (x)");
    dw.download("gemm (w)");
    return dout.download("gemm");
}
}  // namespace

std::vector<float> check_gemm(int version, const std::vector<float>& x, const std::vector<float>& w, int n, int k, int d,
                              int offset) {
    return checked_gemm([&](float* out, const float* dx, const float* dw) { gemm(version, out, dx, dw, n, k, d); }, x, w,
                        n, k, d, offset);
}

std::vector<float> check_gemm_plan(const GemmPlan& plan, const std::vector<float>& x, const std::vector<float>& w, int n,
                                   int k, int d, int offset) {
    return checked_gemm([&](float* out, const float* dx, const float* dw) { gemm_run(plan, out, dx, dw, n, k, d); }, x,
                        w, n, k, d, offset);
}

std::vector<float> check_softmax(int version, const std::vector<float>& x, int rows, int n) {
    expect_size("check_softmax x", x.size(), (size_t)rows * n);
    Guarded<float> dx(x.size());
    dx.upload(x);
    softmax_gpu(version, dx.data(), rows, n);
    finish();
    return dx.download("softmax");
}

std::vector<float> check_rmsnorm(int version, const std::vector<float>& x, const std::vector<float>& weight, int n, int dim,
                                 float eps) {
    expect_size("check_rmsnorm x", x.size(), (size_t)n * dim);
    expect_size("check_rmsnorm weight", weight.size(), (size_t)dim);
    Guarded<float> dx(x.size()), dw(weight.size()), dout(x.size());
    dx.upload(x);
    dw.upload(weight);
    rmsnorm_gpu(version, dout.data(), dx.data(), dw.data(), n, dim, eps);
    finish();
    dx.download("rmsnorm (x)");
    return dout.download("rmsnorm");
}

std::vector<float> check_rope(const std::vector<float>& x, const std::vector<int>& positions, int n, int n_heads,
                              int head_size, float theta, RopeStyle style) {
    expect_size("check_rope x", x.size(), (size_t)n * n_heads * head_size);
    expect_size("check_rope positions", positions.size(), (size_t)n);
    Guarded<float> dx(x.size());
    Guarded<int> dpos(positions.size());
    dx.upload(x);
    dpos.upload(positions);
    rope_gpu(dx.data(), dpos.data(), n, n_heads, head_size, theta, style);
    finish();
    return dx.download("rope");
}

std::vector<float> check_swiglu(const std::vector<float>& hb, const std::vector<float>& hb2, int offset) {
    expect_size("check_swiglu hb2", hb2.size(), hb.size());
    Guarded<float> dh(hb.size(), offset), dh2(hb2.size(), offset);
    dh.upload(hb);
    dh2.upload(hb2);
    swiglu_gpu(dh.data(), dh2.data(), hb.size());
    finish();
    dh2.download("swiglu (hb2)");
    return dh.download("swiglu");
}

std::vector<float> check_residual_add(const std::vector<float>& x, const std::vector<float>& y, int offset) {
    expect_size("check_residual_add y", y.size(), x.size());
    Guarded<float> dx(x.size(), offset), dy(y.size(), offset);
    dx.upload(x);
    dy.upload(y);
    residual_add_gpu(dx.data(), dy.data(), x.size());
    finish();
    dy.download("residual add (y)");
    return dx.download("residual add");
}

std::vector<float> check_embedding(const std::vector<float>& table, const std::vector<int>& tokens, int dim) {
    const int n = (int)tokens.size();
    const size_t vocab = dim > 0 ? table.size() / dim : 0;
    for (int t : tokens)
        if (t < 0 || (size_t)t >= vocab) throw std::runtime_error("check_embedding: token out of range");
    Guarded<float> dt(table.size()), dout((size_t)n * dim);
    Guarded<int> dtok(tokens.size());
    dt.upload(table);
    dtok.upload(tokens);
    embedding_gpu(dout.data(), dt.data(), dtok.data(), n, dim);
    finish();
    return dout.download("embedding");
}

std::vector<float> check_attention_prefill(int version, const std::vector<float>& q, const std::vector<float>& k,
                                           const std::vector<float>& v, int batch, int n, int p0, int context, bool strict,
                                           int n_heads, int n_kv_heads, int head_size) {
    const size_t q_floats = (size_t)batch * n * n_heads * head_size;
    const size_t kv_floats = (size_t)batch * context * n_kv_heads * head_size;
    expect_size("check_attention_prefill q", q.size(), q_floats);
    expect_size("check_attention_prefill k", k.size(), kv_floats);
    expect_size("check_attention_prefill v", v.size(), kv_floats);
    Guarded<float> dq(q_floats), dk(kv_floats), dv(kv_floats), dout(q_floats);
    dq.upload(q);
    dk.upload(k);
    dv.upload(v);
    attention_prefill_gpu(version, dout.data(), dq.data(), dk.data(), dv.data(), batch, n, p0, context, strict, n_heads,
                          n_kv_heads, head_size);
    finish();
    return dout.download("attention prefill");
}

std::vector<float> check_attention_decode(int version, const std::vector<float>& q, const std::vector<float>& k,
                                          const std::vector<float>& v, int batch, int pos, int context, bool strict,
                                          int n_heads, int n_kv_heads, int head_size) {
    const size_t q_floats = (size_t)batch * n_heads * head_size;
    const size_t kv_floats = (size_t)batch * context * n_kv_heads * head_size;
    expect_size("check_attention_decode q", q.size(), q_floats);
    expect_size("check_attention_decode k", k.size(), kv_floats);
    expect_size("check_attention_decode v", v.size(), kv_floats);
    const size_t ws_floats = attention_decode_workspace_floats(batch, context, n_heads, head_size);
    Guarded<float> dq(q_floats), dk(kv_floats), dv(kv_floats), dout(q_floats), workspace(ws_floats);
    dq.upload(q);
    dk.upload(k);
    dv.upload(v);
    attention_decode_gpu(version, dout.data(), dq.data(), dk.data(), dv.data(), batch, pos, context, strict, n_heads,
                         n_kv_heads, head_size, workspace.data(), ws_floats);
    finish();
    workspace.download("attention decode workspace");  // throws if written outside
    return dout.download("attention decode");
}

bool check_can_fault() {
#ifdef KVS_EMU
    return true;
#else
    return false;
#endif
}

std::string check_fault_report(bool sync_after_launch) {
    if (!check_can_fault()) throw std::runtime_error("check_fault_report: a trap would lose the GPU's context");
    const bool was = cuda_sync_after_launch();
    set_cuda_sync_after_launch(sync_after_launch);
    Guarded<float> x(100);
    const std::string msg = error_of([&] {
        launch_fault_kernel(1, 32);
        residual_add_gpu(x.data(), x.data(), 100);  // another kernel, launched before anything waits
        CUDA_CHECK(cudaDeviceSynchronize());
    });
    set_cuda_sync_after_launch(was);
    return msg;
}

std::string check_copy_fault_report(bool sync_after_launch) {
    if (!check_can_fault()) throw std::runtime_error("check_copy_fault_report: a trap would lose the GPU's context");
    const bool was = cuda_sync_after_launch();
    cudaStream_t stream = nullptr;
    CUDA_CHECK(cudaStreamCreate(&stream));
    Guarded<float> a(16), b(16);
    set_cuda_sync_after_launch(false);
    {
        LaunchStream on(stream);
        launch_fault_kernel(1, 32);  // queued: nothing has waited for it yet
    }
    set_cuda_sync_after_launch(sync_after_launch);
    const std::string msg =
        error_of([&] { kvk::copy_async(b.data(), a.data(), 16 * sizeof(float), cudaMemcpyDeviceToDevice, stream); });
    set_cuda_sync_after_launch(was);
    cudaStreamSynchronize(stream);  // the fault, if the copy did not wait for it
    cudaGetLastError();
    CUDA_CHECK(cudaStreamDestroy(stream));
    return msg;
}

std::string check_bad_launch_report() {
    // more threads than a block may have: a configuration error, seen at the launch
    return error_of([] { launch_fault_kernel(0, 2048); });
}
