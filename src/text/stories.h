// Synthetic training data with no download: short, seeded English stories built
// from templates. Later sentences name again the characters and objects that
// earlier sentences introduced, so a model that keeps the context predicts them
// better than one that does not (the recall probes measure exactly that).
#pragma once
#include "src/util.h"
#include <cstdint>
#include <string>
#include <vector>

// One story of 3 to 8 sentences in plain ASCII, ending with "\n", so stories
// concatenate into one training text.
std::string generate_story(Rng& rng);

// `count` stories from one Rng seeded with `seed`: the same seed gives the same list.
std::vector<std::string> generate_stories(uint64_t seed, int count);

// Fixed splits. Train draws from seed 0x7472616E ("tran"), Validation from
// seed 0x76616C69 ("vali"); on top of that a story goes to Train only when a
// hash of its text is even and to Validation only when it is odd, so the two
// splits can never hold the same story, even by chance.
enum class Split { Train, Validation };
std::vector<std::string> story_split(Split s, int count);

// The same stories one at a time, in story_split's order: output that starts at once, and
// memory that does not grow with the count.
class StoryStream {
public:
    explicit StoryStream(Split s);
    std::string next();

private:
    bool train_;
    Rng rng_;
};

// Mean bytes per story (its newline included) over the train split's first 1000 stories:
// what N stories will take, estimated before any is made.
double mean_story_bytes();

// A story prefix that stops right before a name or object word which the
// prefix mentioned earlier; nothing but recall of the prefix predicts it.
// `prompt` has no trailing space and `answer` no leading space.
struct RecallProbe {
    std::string prompt;
    std::string answer;
};
std::vector<RecallProbe> recall_probes(uint64_t seed, int count);

// The same probes one at a time, in recall_probes' order.
class ProbeStream {
public:
    explicit ProbeStream(uint64_t seed) : rng_(seed) {}
    RecallProbe next();

private:
    Rng rng_;
};

// The lexicon, for tests and for reports on what a model has to remember.
const std::vector<std::string>& story_names();
const std::vector<std::string>& story_objects();
