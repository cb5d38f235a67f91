// Evaluation: cross-entropy by hand, perplexity of a uniform model, and recall scoring
// through a scripted backend that "says" a fixed continuation.
#include <catch2/catch.hpp>
#include "reference/forward.h"
#include "src/commands/eval.h"
#include "src/text/stories.h"
#include "src/text/tokenizer.h"
#include <cmath>

TEST_CASE("cross entropy of known logits", "[eval]") {
    std::vector<float> logits = {0.0f, std::log(3.0f)};  // probabilities ~1/4, ~3/4
    const double l = logits[1];                          // the float actually stored
    CHECK(cross_entropy(logits.data(), 2, 1) == Approx(std::log(1 + std::exp(l)) - l).epsilon(1e-12));
    CHECK(cross_entropy(logits.data(), 2, 0) == Approx(std::log(1 + std::exp(l))).epsilon(1e-12));
    CHECK(cross_entropy(logits.data(), 2, 0) == Approx(-std::log(0.25)).epsilon(1e-6));
}

TEST_CASE("a model with a zero classifier has perplexity = vocabulary size", "[eval]") {
    Config c = preset_config("tiny");
    Model m = init_model(c, parse_plan("lckv:2", c.n_layers), 1);
    std::fill(m.weights.token_embedding.begin(), m.weights.token_embedding.end(), 0.0f);  // tied: logits all 0
    auto be = make_cpu_backend(m, 1, 16);
    std::vector<int> tokens(40);
    for (int i = 0; i < 40; i++) tokens[i] = i * 7 % 259;
    EvalResult r = evaluate(*be, m, tokens, 16, PrefillOptions{});
    CHECK(r.predicted == 39);
    CHECK(r.windows == 3);
    CHECK(r.perplexity == Approx(259.0).epsilon(1e-5));
}

// Logits that always prefer the next byte of a fixed text (byte tokenizer: id = byte + 3).
class ScriptedBackend : public Backend {
public:
    ScriptedBackend(const std::string& say, int vocab) : say_(say), logits_(vocab) {}
    std::string device_name() const override { return "script"; }
    void prefill(const int*, int n, const PrefillOptions&) override { pos_ = n; at_ = 0; point(); }
    void decode(const int*) override { pos_++; at_++; point(); }
    const float* logits() override { return logits_.data(); }
    const float* hidden() override { return nullptr; }
    int logit_positions() const override { return 1; }
    void read_kv(int, std::vector<float>&, std::vector<float>&) override {}
    int batch() const override { return 1; }
    int vocab_size() const override { return (int)logits_.size(); }
    int context() const override { return 1000; }
    int pos() const override { return pos_; }
    size_t kv_cache_bytes() const override { return 0; }

private:
    void point() {
        std::fill(logits_.begin(), logits_.end(), 0.0f);
        logits_[(unsigned char)say_[at_ % say_.size()] + 3] = 10.0f;
    }
    std::string say_;
    std::vector<float> logits_;
    int pos_ = 0, at_ = 0;
};

TEST_CASE("recall scoring needs the whole answer word", "[eval]") {
    Config c = preset_config("tiny");
    Model m = init_model(c, parse_plan("standard", c.n_layers), 1);
    Tokenizer tok = Tokenizer::bytes();
    std::vector<RecallProbe> probes = {{"Tom had a red ball. Tom lost the red", "ball"}};
    auto score = [&](const std::string& says) {
        ScriptedBackend be(says, c.vocab_size);
        return recall_accuracy(be, m, tok, probes, PrefillOptions{}).correct;
    };
    CHECK(score(" ball.") == 1);
    CHECK(score(" ball") == 1);
    CHECK(score(" balloon") == 0);  // a longer word is not the answer
    CHECK(score(" bell.") == 0);
    CHECK(score("ball.") == 0);     // the word must follow a space
}

TEST_CASE("documents are encoded with BOS each, empty lines skipped", "[eval]") {
    Tokenizer tok = Tokenizer::bytes();
    std::vector<int> want = {1, 'a' + 3, 'b' + 3, 1, 'c' + 3};
    CHECK(encode_documents(tok, {"ab", "", "c"}) == want);
}
