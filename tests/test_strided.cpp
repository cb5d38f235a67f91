// The strided copies that replace cudaMemcpy2D in the GPU forward (cuda/strided.h): every
// offset is size_t arithmetic, checked here at the sizes where cudaMemcpy2D's pitch passes
// 2^31 - 1 bytes (a K/V slot at kv_dim 4096 and context 128K; the logits column of a
// token-by-token prefill of n > 16777 tokens at vocab 32000), without allocating them.
#include <catch2/catch.hpp>
#include "cuda/strided.h"
#include <cstdint>
#include <vector>

namespace {

constexpr uint64_t PITCH_LIMIT = 2147483647;  // cudaMemcpy2D's largest pitch in bytes

// Every (row, column) of r in order, as a nested loop would visit them.
void expect_rows(const StridedRows& r, uint64_t src_offset, uint64_t src_pitch, uint64_t dst_offset, uint64_t dst_pitch) {
    REQUIRE(r.count() == r.rows * r.width);
    size_t e = 0;
    for (uint64_t row = 0; row < r.rows; row++)
        for (uint64_t col = 0; col < r.width; col++, e++) {
            CHECK(r.src(e) == src_offset + row * src_pitch + col);
            CHECK(r.dst(e) == dst_offset + row * dst_pitch + col);
        }
}

}  // namespace

TEST_CASE("strided rows visit every element of a small copy in order", "[strided]") {
    const KVLayout kv{3, 2, 10, 6};  // 3 slots, batch 2, context 10, kv_dim 6
    expect_rows(kv_store_rows(kv, 1, 4, 5), 0, 4 * 6, kv.offset(1, 0, 5), 10 * 6);
    expect_rows(column_rows(3, 7, 2, 5), 0, 5, 2 * 5, 7 * 5);
    expect_rows(last_position_rows(3, 7, 5), 6 * 5, 7 * 5, 0, 5);
    const StridedRows s = kv_store_rows(kv, 2, 4, 6);  // the last slot, up to the end of the context
    CHECK(s.dst_span() == kv.floats());
    CHECK(s.src_span() == 2 * 4 * 6);
}

TEST_CASE("the K/V store's offsets at kv_dim 4096 and context 128K", "[strided]") {
    // batch 2, 8 slots: the cache is 8 x 2 x 131072 x 4096 floats = 32 GiB, never allocated
    const KVLayout kv{8, 2, 131072, 4096};
    const StridedRows r = kv_store_rows(kv, 7, 5, 131067);  // the last 5 positions of the last slot
    CHECK(r.dst_pitch * sizeof(float) > PITCH_LIMIT);  // 2 GiB: too far apart for cudaMemcpy2D
    const size_t last = r.count() - 1;
    REQUIRE(last == 2u * 5 * 4096 - 1);
    // sequence 1, position 131071, element 4095 of slot 7, worked out term by term: past
    // what an int (and even a 32-bit unsigned) offset can hold
    const uint64_t want = ((7ull * 2 + 1) * 131072 + 131071) * 4096 + 4095;
    CHECK(want > UINT32_MAX);
    CHECK(r.dst(last) == want);
    CHECK(r.dst_span() == kv.floats());
    CHECK(r.src(last) == 2ull * 5 * 4096 - 1);
    // the first element of sequence 1: one slot row (context x kv_dim floats) after sequence 0
    CHECK(r.dst(5 * 4096) == r.dst(0) + 131072ull * 4096);
}

TEST_CASE("the logits column of a long token-by-token prefill at vocab 32000", "[strided]") {
    const int batch = 8, n = 20000, vocab = 32000;  // n > 16777: n x vocab x 4 bytes > 2^31 - 1
    const StridedRows r = column_rows(batch, n, n - 1, vocab);
    CHECK(r.dst_pitch * sizeof(float) > PITCH_LIMIT);
    const size_t last = r.count() - 1;
    const uint64_t want = 7ull * 20000 * 32000 + 19999ull * 32000 + 31999;  // sequence 7, token 19999, last logit
    CHECK(want > UINT32_MAX);
    CHECK(r.dst(last) == want);
    CHECK(r.dst_span() == (uint64_t)batch * n * vocab);
    CHECK(r.src(last) == 8ull * 32000 - 1);
    // and the gather of each sequence's last position from (batch, n, vocab)
    const StridedRows g = last_position_rows(batch, n, vocab);
    CHECK(g.src_pitch * sizeof(float) > PITCH_LIMIT);
    CHECK(g.src(g.count() - 1) == want);
    CHECK(g.dst(g.count() - 1) == 8ull * 32000 - 1);
}
