// --upward-rule authors (src/model/plan.h UpwardRule): the LCKV authors' one-token step for a
// layer reading an upper layer, a zero K/V row and source positions 0 .. p-2. The op worked
// out by hand; the whole model against the logits their code computed on a tiny folder
// (tests/data/lckv_tiny, made by tools/lckv_compare/make_tiny_reference.py); and what the
// rule leaves alone. Walkthrough chapter 9.9.
#include <catch2/catch.hpp>
#include "reference/forward.h"
#include "reference/ops.h"
#include "src/formats/checkpoint.h"
#include "tests/helpers.h"
#include <cmath>
#include <fstream>
#include <limits>

TEST_CASE("attention_zero_row worked out by hand: a zero row, then positions 0..p-2", "[upward-rule]") {
    // head_size 1 (scale 1), two query heads over one KV head. Head 0's query is ln 3, head
    // 1's is 0. Keys 1, 0, NaN; values 8, 2, NaN: row p-1 must never be read, so a NaN there
    // would show.
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float q[2] = {std::log(3.0f), 0.0f};
    const float k[3] = {1.0f, 0.0f, nan}, v[3] = {8.0f, 2.0f, nan};
    float out[2];
    // p = 3: scores (zero row, k0, k1) = (0, ln 3, 0) -> exp (1, 3, 1) / 5;
    // head 0: (3 x 8 + 1 x 2) / 5 = 5.2; head 1: scores all 0 -> (8 + 2) / 3
    attention_zero_row(out, q, k, v, 3, 2, 1, 1);
    CHECK(out[0] == Approx(5.2f).epsilon(1e-6));
    CHECK(out[1] == Approx(10.0f / 3.0f).epsilon(1e-6));
    // p = 2: (zero row, k0) -> exp (1, 3) / 4; head 0: 3 x 8 / 4 = 6; head 1: 8 / 2 = 4
    const float k2[2] = {1.0f, nan}, v2[2] = {8.0f, nan};
    attention_zero_row(out, q, k2, v2, 2, 2, 1, 1);
    CHECK(out[0] == Approx(6.0f).epsilon(1e-6));
    CHECK(out[1] == Approx(4.0f).epsilon(1e-6));
    // p = 1 and p = 0: the zero row alone, so zeros, though row 0 exists at p = 1
    for (int p : {0, 1}) {
        out[0] = out[1] = nan;
        attention_zero_row(out, q, k2, v2, p, 2, 1, 1);
        CHECK(out[0] == 0.0f);
        CHECK(out[1] == 0.0f);
    }
    // the paper's rule at p = 3 reads rows 0..2, so it picks up the NaN the authors' skips
    attention(out, q, k, v, 1, 3, true, 2, 1, 1);
    CHECK(std::isnan(out[0]));
}

namespace {

std::vector<float> read_rows(const std::string& path, size_t floats) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    std::vector<float> rows(floats);
    in.read((char*)rows.data(), (std::streamsize)(floats * sizeof(float)));
    REQUIRE(in.gcount() == (std::streamsize)(floats * sizeof(float)));
    REQUIRE(in.peek() == EOF);
    return rows;
}

// Every position's logits, as generation computes them: the prompt (the model's own prefill,
// all positions kept), then one decode step per remaining id.
std::vector<float> logits_along(const Model& m, const std::vector<int>& ids, int n_prompt) {
    auto be = make_cpu_backend(m, 1, (int)ids.size());
    PrefillOptions opt = parse_prefill("", m);
    opt.all_positions = true;
    be->prefill(ids.data(), n_prompt, opt);
    const size_t V = m.config.vocab_size;
    std::vector<float> rows(be->logits(), be->logits() + n_prompt * V);
    for (size_t t = n_prompt; t < ids.size(); t++) {
        be->decode(&ids[t]);
        rows.insert(rows.end(), be->logits(), be->logits() + V);
    }
    return rows;
}

}  // namespace

TEST_CASE("--upward-rule authors gives the LCKV authors' code's logits on a tiny folder", "[upward-rule][hf]") {
    // tests/data/lckv_tiny: 4 layers, source map 0,3,3,3 with every diagonal masked; their
    // LCKVLlamaForCausalLM on its FlashAttention path, as generate() calls it.
    struct Case {
        const char* file;
        std::vector<int> ids;
        int n_prompt;
    };
    const Case cases[] = {
        {"short.f32", {1, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 10}, 4},   // token by token
        {"long.f32", {1, 84, 104, 101, 32, 99, 97, 116, 32, 115, 97, 116, 32, 111, 110, 32}, 12},  // 9 iterations
    };
    Model m = load_model("tests/data/lckv_tiny");
    REQUIRE(m.plan.spec() == "0,3,3,3,diag=all");
    const size_t V = m.config.vocab_size;
    for (const Case& c : cases) {
        INFO(c.file);
        const std::vector<float> theirs = read_rows(std::string("tests/data/lckv_tiny/") + c.file, c.ids.size() * V);
        double scale = 1.0;
        for (float x : theirs) scale = std::max(scale, (double)std::fabs(x));
        m.plan.upward_rule = UpwardRule::Authors;
        const ErrorStats authors = compare(logits_along(m, c.ids, c.n_prompt), theirs);
        INFO("authors: max " << authors.max_abs << ", rel L2 " << authors.rel_l2);
        CHECK(authors.finite);
        CHECK(authors.max_abs <= 1e-4 * scale);  // DESIGN.md section 6, whole-model logits
        CHECK(authors.rel_l2 <= 1e-4);
        // the paper's rule differs from theirs from the first one-token step of an upward layer
        m.plan.upward_rule = UpwardRule::Paper;
        const ErrorStats paper = compare(logits_along(m, c.ids, c.n_prompt), theirs);
        INFO("paper: max " << paper.max_abs);
        CHECK(paper.max_abs > 3e-3);
    }
}

TEST_CASE("--upward-rule authors changes one-token steps of upward layers only", "[upward-rule]") {
    Config c = preset_config("tiny");
    Model base = init_model(c, parse_plan("standard", c.n_layers), 3);
    for (auto* t : {&base.weights.wq, &base.weights.wk, &base.weights.wv, &base.weights.wo})
        for (float& x : *t) x *= 8.0f;
    const int n = 12;  // more than T = 9: a parallel prefill
    std::vector<int> tokens(n + 3);
    for (int i = 0; i < n + 3; i++) tokens[i] = (i * 37 + 11) % 259;
    auto run = [&](const std::string& plan, UpwardRule rule, bool sequential) {
        Model m = apply_plan(base, parse_plan(plan, c.n_layers));
        m.plan.upward_rule = rule;
        auto be = make_cpu_backend(m, 1, n + 3);
        PrefillOptions opt;
        opt.all_positions = true;
        opt.sequential = sequential;
        be->prefill(tokens.data(), n, opt);
        std::vector<float> rows(be->logits(), be->logits() + (size_t)n * c.vocab_size);
        for (int t = n; t < n + 3; t++) {
            be->decode(&tokens[t]);
            rows.insert(rows.end(), be->logits(), be->logits() + c.vocab_size);
        }
        return rows;
    };
    const size_t prompt_floats = (size_t)n * c.vocab_size;
    // no layer reads upward: the rule changes nothing, diag=all included
    for (const char* plan : {"cla:2,diag=all", "standard"}) {
        INFO(plan);
        CHECK(compare(run(plan, UpwardRule::Authors, true), run(plan, UpwardRule::Paper, true)).max_abs == 0.0);
    }
    // upward layers: the parallel prefill is the same bit for bit, the decode steps differ
    const std::vector<float> paper = run("lckv:2", UpwardRule::Paper, false), authors = run("lckv:2", UpwardRule::Authors, false);
    CHECK(compare(authors.data(), paper.data(), prompt_floats).max_abs == 0.0);
    CHECK(compare(authors.data() + prompt_floats, paper.data() + prompt_floats, 3 * c.vocab_size).rel_l2 > 1e-3);
    // token-by-token prefill: position 0 sees nothing under either rule; at position 1 the
    // paper's rule sees source position 0, the authors' only the zero row
    const std::vector<float> seq_paper = run("lckv:2", UpwardRule::Paper, true), seq_authors = run("lckv:2", UpwardRule::Authors, true);
    CHECK(compare(seq_authors.data(), seq_paper.data(), c.vocab_size).max_abs == 0.0);
    CHECK(compare(seq_authors.data() + c.vocab_size, seq_paper.data() + c.vocab_size, c.vocab_size).rel_l2 > 1e-3);
}
