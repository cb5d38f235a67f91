// What a run will allocate (src/model/memory.h): the formulas against real allocations, and
// the check that refuses a run before it takes memory the machine does not have.
#include <catch2/catch.hpp>
#include "reference/forward.h"
#include "src/bench/common.h"
#include "src/model/memory.h"
#include "tests/helpers.h"
#include <cstdint>

TEST_CASE("sizes saturate instead of wrapping", "[memory]") {
    CHECK(sat_mul(3, 4) == 12);
    CHECK(sat_mul(SIZE_MAX / 2 + 1, 2) == SIZE_MAX);
    CHECK(sat_mul((size_t)1 << 40, (size_t)1 << 40) == SIZE_MAX);
    CHECK(sat_add(SIZE_MAX - 1, 2) == SIZE_MAX);
    CHECK(sat_product({2, 3, 7}) == 42);
    CHECK(sat_product({(size_t)INT32_MAX, (size_t)INT32_MAX, (size_t)INT32_MAX, 8}) == SIZE_MAX);
    // what `info --context 2147483647 --batch 2147483647` used to wrap to 18446737476.64 GB
    Config c = preset_config("stories110M");
    CHECK(kv_cache_bytes(c, 12, INT32_MAX, INT32_MAX) == SIZE_MAX);
}

TEST_CASE("weight_bytes is what allocate_weights allocates", "[memory]") {
    for (const char* preset : {"tiny", "demo", "stories15M"})
        for (bool tied : {true, false})
            for (const char* plan : {"standard", "lckv:2", "cla:2"}) {
                Config c = preset_config(preset);
                c.shared_classifier = tied;
                Model m{c, parse_plan(plan, c.n_layers), {}};
                allocate_weights(m);
                INFO(preset << " tied " << tied << " plan " << plan);
                CHECK(weight_bytes(c, m.plan.n_kv_layers()) == m.n_params() * sizeof(float));
            }
}

TEST_CASE("a backend allocates what add_backend says it will", "[memory]") {
    Config c = preset_config("tiny");
    for (const char* plan : {"standard", "lckv:2"}) {
        INFO("plan " << plan);
        const Model m = init_model(c, parse_plan(plan, c.n_layers), 3);
        const int batch = 3, context = 40, prompt = 30;
        MemoryNeed need;
        add_backend(need, m, Device::CPU, batch, context, prompt, true);
        const size_t before = allocated_bytes(Device::CPU);
        {
            auto be = make_cpu_backend(m, batch, context);
            CHECK(be->kv_cache_bytes() == kv_cache_bytes(c, m.plan.n_kv_layers(), batch, context));
            const std::vector<int> tokens = random_tokens(batch * prompt, c.vocab_size, 5);
            PrefillOptions all;
            all.all_positions = true;
            be->prefill(tokens.data(), prompt, all);
            const size_t measured = allocated_bytes(Device::CPU) - before;
            const size_t estimate = need.host_bytes();
            INFO("measured " << measured << " bytes, estimated " << estimate);
            // an upper bound, and a close one: the run state is most of it besides the cache
            CHECK(measured <= estimate);
            CHECK(estimate <= measured + measured / 10 + 4096);
        }
    }
}

TEST_CASE("check_memory refuses what the machine does not have, naming the size and the flag", "[memory]") {
    const size_t available = available_host_bytes();
    REQUIRE(available > 0);
    check_memory(MemoryNeed().host("a little", 1024), "the test", "lower --x");  // fits: no error
    MemoryNeed too_much;
    too_much.host("KV cache", available).host("run state", available);
    CHECK_THROWS_WITH(check_memory(too_much, "kvshare generate", "lower --batch or -n"),
                      Catch::Contains("kvshare generate needs") && Catch::Contains("KV cache") &&
                          Catch::Contains("is available; lower --batch or -n"));
    MemoryNeed absurd;
    absurd.host("KV cache", SIZE_MAX);
    CHECK_THROWS_WITH(check_memory(absurd, "x", ""), Catch::Contains("more than 18 EB"));
    // GPU parts are checked against the GPU; without one the backend says so itself
    if (!cuda_available(nullptr)) check_memory(MemoryNeed().gpu("weights", SIZE_MAX), "x", "");
}

TEST_CASE("absurd shapes and batches are refused before anything is allocated", "[memory]") {
    // a header describing a 70B-class model (80 layers of dim 8192, hidden 28672, vocab 32000)
    Config big;
    big.dim = 8192; big.hidden_dim = 28672; big.n_layers = 80; big.n_heads = 64; big.n_kv_heads = 8;
    big.vocab_size = 32000; big.max_seq_len = 4096;
    validate_config(big);
    if (weight_bytes(big, 80) > available_host_bytes()) {
        Model m{big, parse_plan("standard", 80), {}};
        const size_t before = allocated_bytes(Device::CPU);
        CHECK_THROWS_WITH(allocate_weights(m), Catch::Contains("needs") && Catch::Contains("weights"));
        CHECK(allocated_bytes(Device::CPU) < before + ((size_t)1 << 20));
        CHECK(m.weights.wq.empty());
    }
    // a batch whose KV cache no machine has: refused at once, by make_backend and the CPU forward
    const Model tiny = init_model(preset_config("tiny"), parse_plan("standard", 8), 1);
    CHECK_THROWS_WITH(make_backend(tiny, Device::CPU, 1 << 30, 64), Catch::Contains("needs") && Catch::Contains("KV cache"));
    CHECK_THROWS_WITH(make_cpu_backend(tiny, 1 << 30, 64), Catch::Contains("needs") && Catch::Contains("KV cache"));
}

TEST_CASE("train_step_bytes grows with what a step records", "[memory]") {
    Config c = preset_config("tiny");
    const Plan standard = parse_plan("standard", 8), lckv = parse_plan("lckv:2", 8);
    // twice the rows, twice the activations
    CHECK(train_step_bytes(c, standard, 4, 32, 2) == 2 * train_step_bytes(c, standard, 2, 32, 2));
    // b only matters where a block iterates: its layers are recorded b times
    CHECK(train_step_bytes(c, standard, 2, 32, 2) == train_step_bytes(c, standard, 2, 32, 9));
    CHECK(train_step_bytes(c, lckv, 2, 32, 3) > train_step_bytes(c, lckv, 2, 32, 2));
    CHECK(train_step_bytes(c, standard, 8, 64, 2) > 8 * 64 * c.vocab_size * 2 * sizeof(float));  // logits and their gradient
}
