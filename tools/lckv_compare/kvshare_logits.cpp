// kvshare's side of tools/lckv_compare/compare.py: the logits of a model on given token ids,
// through the CPU reference forward, as float32 rows of vocab_size values. Documentation, not
// built by make or run by the tests; compare.py builds it against a CPU build's objects.
//
//   kvshare_logits MODEL IDS N_PROMPT OUT [paper|authors] [cache|full] [GENERATE]
//
// IDS holds whitespace-separated token ids; the first N_PROMPT are the prompt.
//   cache: prefill the prompt (the model's own prefill: token by token up to T tokens, else
//          T parallel iterations), keeping every position's logits, then decode the rest of
//          IDS one token at a time, as generation with a KV cache does: one row per id.
//   full:  one prefill over all of IDS, every position kept (a forward without a cache).
// With GENERATE = K > 0 the ids after the prompt are ignored: K tokens are generated greedily
// instead (cache: decode steps; full: the whole sequence prefilled again for each token), and
// their ids go to stdout; OUT gets the rows that chose them.
#include "src/formats/checkpoint.h"
#include "src/model/backend.h"
#include "src/util.h"
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

static int argmax(const float* row, int n) { return (int)(std::max_element(row, row + n) - row); }

int main(int argc, char** argv) {
    try {
        if (argc < 5) fail("usage: kvshare_logits MODEL IDS N_PROMPT OUT [paper|authors] [cache|full] [GENERATE]");
        Model m = load_model(argv[1]);
        m.plan.upward_rule = parse_upward_rule(argc > 5 ? argv[5] : "paper");
        const std::string mode = argc > 6 ? argv[6] : "cache";
        const int generate = argc > 7 ? std::stoi(argv[7]) : 0;
        std::vector<int> ids;
        std::ifstream in(argv[2]);
        for (int id; in >> id;) ids.push_back(id);
        const int n_prompt = std::stoi(argv[3]);
        if (n_prompt < 1 || n_prompt > (int)ids.size()) fail("N_PROMPT must be 1..the number of ids");
        if (generate > 0) ids.resize(n_prompt);
        const int V = m.config.vocab_size, total = generate > 0 ? n_prompt + generate : (int)ids.size();

        auto backend = make_cpu_backend(m, 1, total);
        PrefillOptions opt = parse_prefill("", m);
        opt.all_positions = true;
        std::vector<float> rows;  // (positions, V)
        auto keep = [&](const float* r, int n) { rows.insert(rows.end(), r, r + (size_t)n * V); };

        if (mode == "full" && generate > 0) {
            for (int k = 0; k < generate; k++) {
                backend->prefill(ids.data(), (int)ids.size(), opt);
                const float* last = backend->logits() + (size_t)(ids.size() - 1) * V;
                keep(last, 1);
                ids.push_back(argmax(last, V));
            }
        } else if (mode == "full") {
            backend->prefill(ids.data(), (int)ids.size(), opt);
            keep(backend->logits(), (int)ids.size());
        } else if (mode == "cache") {
            backend->prefill(ids.data(), n_prompt, opt);
            if (generate == 0) keep(backend->logits(), n_prompt);
            const float* last = backend->logits() + (size_t)(n_prompt - 1) * V;
            for (int t = n_prompt; t < total; t++) {
                if (generate > 0) {
                    keep(last, 1);
                    ids.push_back(argmax(last, V));
                }
                backend->decode(&ids[t]);
                last = backend->logits();
                if (generate == 0) keep(last, 1);
            }
        } else {
            fail("mode must be cache or full");
        }
        if (generate > 0)
            for (int t = n_prompt; t < (int)ids.size(); t++) std::printf("%d%c", ids[t], t + 1 < (int)ids.size() ? ' ' : '\n');
        std::ofstream out(argv[4], std::ios::binary);
        out.write((const char*)rows.data(), (std::streamsize)(rows.size() * sizeof(float)));
        return out ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kvshare_logits: error: %s\n", e.what());
        return 1;
    }
}
