// Template stories: a hero, an object, maybe a friend and the friend's object.
// Every placeholder is filled from a cast drawn once per story, so a later
// sentence must name the same hero, friend and objects as the earlier ones.
#include "src/text/stories.h"
#include <algorithm>

namespace {

struct Person {
    const char* name;
    bool girl;
};

const Person kPeople[] = {
    {"Lily", true},  {"Tom", false},  {"Max", false},  {"Sue", true},   {"Ben", false},
    {"Mia", true},   {"Anna", true},  {"Sam", false},  {"Tim", false},  {"Lucy", true},
    {"Jack", false}, {"Emma", true},  {"Leo", false},  {"Zoe", true},   {"Jake", false},
    {"Amy", true},   {"Kate", true},  {"Finn", false}, {"Rose", true},  {"Ella", true},
    {"Noah", false}, {"Ava", true},   {"Owen", false}, {"Ruby", true},  {"Jane", true},
    {"Bob", false},  {"Mark", false}, {"Sara", true},  {"Dan", false},  {"Nina", true},
};

// Single words that appear nowhere else in the templates, so every occurrence
// of one in a story is a mention of the story's object.
const char* const kObjects[] = {
    "ball",   "kite",   "book",    "doll",   "car",     "hat",    "cup",    "box",
    "drum",   "boat",   "train",   "shell",  "rock",    "flower", "apple",  "cake",
    "cookie", "key",    "coin",    "bell",   "spoon",   "sock",   "shoe",   "ring",
    "crayon", "robot",  "puppet",  "blanket", "pillow", "balloon", "leaf",  "stick",
    "feather", "truck", "bucket",  "map",    "lamp",    "whistle", "basket", "scarf",
};

const char* const kPlaces[] = {
    "park", "garden", "forest", "beach", "school", "kitchen", "yard", "lake", "hill", "farm",
    "zoo", "store", "river", "library", "playground", "field", "house", "barn", "pond", "town",
};

const char* const kAdjectives[] = {
    "red", "blue", "green", "yellow", "pink", "purple", "orange", "brown", "white", "black",
    "big", "small", "little", "shiny", "old", "new", "soft", "pretty", "funny", "tiny",
};

const char* const kTraits[] = {"kind", "happy", "brave", "curious", "shy",
                               "silly", "clever", "busy", "friendly", "sleepy"};
const char* const kFeelings[] = {"happy", "proud", "excited", "glad", "safe", "warm"};
const char* const kTogether[] = {"played", "laughed", "ran", "sang", "danced", "had fun"};

uint32_t pick_index(Rng& rng, size_t n) { return rng.next_u32() % (uint32_t)n; }

template <typename T, size_t N>
const T& pick(Rng& rng, const T (&items)[N]) { return items[pick_index(rng, N)]; }

// "a red" or "an orange": the article follows the word after it.
std::string with_article(const std::string& word) {
    bool vowel = std::string("aeiou").find(word[0]) != std::string::npos;
    return (vowel ? "an " : "a ") + word;
}

// Everything a story's placeholders can refer to, drawn once.
struct Cast {
    Person hero, pal;
    std::string obj, adj, obj2, adj2, place, place2, trait, feel, together;
};

Cast draw_cast(Rng& rng) {
    Cast c;
    c.hero = pick(rng, kPeople);
    do c.pal = pick(rng, kPeople); while (std::string(c.pal.name) == c.hero.name);
    c.obj = pick(rng, kObjects);
    do c.obj2 = pick(rng, kObjects); while (c.obj2 == c.obj);
    c.adj = pick(rng, kAdjectives);
    // a different adjective, so "the red ..." tells the two objects apart only by memory
    do c.adj2 = pick(rng, kAdjectives); while (c.adj2 == c.adj);
    c.place = pick(rng, kPlaces);
    do c.place2 = pick(rng, kPlaces); while (c.place2 == c.place);
    c.trait = pick(rng, kTraits);
    c.feel = pick(rng, kFeelings);
    c.together = pick(rng, kTogether);
    return c;
}

// Builds the text and records where a name or object is mentioned again.
struct Writer {
    const Cast& cast;
    std::string here;                 // the place the story is at now
    std::string text;
    std::vector<size_t> recalls;      // offsets of repeated mentions
    std::vector<std::string> seen;    // names and objects mentioned so far

    void mention(const std::string& word) {
        if (std::find(seen.begin(), seen.end(), word) != seen.end()) recalls.push_back(text.size());
        else seen.push_back(word);
        text += word;
    }

    // Expands one placeholder such as {H} or {aadj}.
    void expand(const std::string& key) {
        const Person& h = cast.hero;
        const Person& p = cast.pal;
        if (key == "H") mention(h.name);
        else if (key == "F") mention(p.name);
        else if (key == "obj") mention(cast.obj);
        else if (key == "obj2") mention(cast.obj2);
        else if (key == "adj") text += cast.adj;
        else if (key == "adj2") text += cast.adj2;
        else if (key == "aadj") text += with_article(cast.adj);
        else if (key == "aadj2") text += with_article(cast.adj2);
        else if (key == "atrait") text += with_article(cast.trait);
        else if (key == "kind") text += h.girl ? "girl" : "boy";
        else if (key == "Fkind") text += p.girl ? "girl" : "boy";
        else if (key == "he") text += h.girl ? "she" : "he";
        else if (key == "He") text += h.girl ? "She" : "He";
        else if (key == "his") text += h.girl ? "her" : "his";
        else if (key == "His") text += h.girl ? "Her" : "His";
        else if (key == "him") text += h.girl ? "her" : "him";
        else if (key == "here") text += here;
        else if (key == "place2") text += cast.place2;
        else if (key == "feel") text += cast.feel;
        else if (key == "together") text += cast.together;
        else fail("story template: unknown placeholder {" + key + "}");
    }

    void sentence(const std::string& tmpl) {
        if (!text.empty()) text += ' ';
        for (size_t i = 0; i < tmpl.size(); i++) {
            if (tmpl[i] != '{') { text += tmpl[i]; continue; }
            size_t close = tmpl.find('}', i);
            expand(tmpl.substr(i + 1, close - i - 1));
            i = close;
        }
    }
};

const char* const kIntros[] = {
    "Once upon a time, there was {atrait} {kind} named {H}.",
    "{H} was {atrait} little {kind}.",
    "There once was {atrait} {kind} called {H}.",
};

const char* const kFinds[] = {
    "One day, {H} found {aadj} {obj} at the {here}.",
    "{H} had {aadj} {obj}.",
    "{His} mom gave {him} {aadj} {obj}.",
    "One morning, {H} saw {aadj} {obj} near the {here}.",
};

// What has happened so far decides which middle sentences still make sense.
struct Plot {
    bool met = false, pal_has = false, gave = false, thanked = false, shown = false;
    bool went = false, played = false, lost = false, refound = false, felt = false, joined = false;
};

// Picks one fitting middle sentence, writes it and updates the plot; false if none fits.
bool middle_sentence(Rng& rng, Writer& w, Plot& p) {
    bool has = !p.gave && (!p.lost || p.refound);   // the hero holds the object now
    std::vector<int> options;
    if (!p.went && has) options.push_back(0);
    if (!p.met) options.push_back(1);
    if (p.met && !p.pal_has) options.push_back(2);
    if (p.met && has) options.push_back(3);
    if (p.gave && !p.thanked) options.push_back(4);
    if (p.pal_has && !p.shown) options.push_back(5);
    if (!p.played && has) options.push_back(6);
    if (!p.lost && has) options.push_back(7);
    if (p.lost && !p.refound) options.push_back(8);
    if (p.met && !p.joined) options.push_back(9);
    if (!p.felt && has) options.push_back(10);
    if (options.empty()) return false;
    switch (options[pick_index(rng, options.size())]) {
    case 0: w.sentence("Then {he} took the {adj} {obj} to the {place2}."); w.here = w.cast.place2; p.went = true; break;
    case 1: w.sentence("At the {here}, {he} met a {Fkind} named {F}."); p.met = true; break;
    case 2: w.sentence("{F} had {aadj2} {obj2}."); p.pal_has = true; break;
    case 3: w.sentence("{H} gave the {adj} {obj} to {F}."); p.gave = true; break;
    case 4: w.sentence("{F} said, \"Thank you, {H}!\""); p.thanked = true; break;
    case 5: w.sentence("{F} showed {H} the {adj2} {obj2}."); p.shown = true; break;
    case 6: w.sentence("{H} played with the {adj} {obj} all day."); p.played = true; break;
    case 7: w.sentence("Then {H} could not find the {adj} {obj}."); p.lost = true; break;
    case 8: w.sentence("{He} looked around the {here} and found the {obj} again."); p.refound = true; break;
    case 9: w.sentence("{H} and {F} {together} at the {here}."); p.joined = true; break;
    case 10: w.sentence("The {adj} {obj} made {H} feel {feel}."); p.felt = true; break;
    }
    return true;
}

// Every ending names the hero and the object again.
void ending_sentence(Rng& rng, Writer& w, const Plot& p) {
    std::vector<const char*> options;
    if (p.gave) {
        options.push_back("{F} kept the {adj} {obj} and never forgot {H}.");
    } else if (p.lost && !p.refound) {
        options.push_back("At last, {H} found the {adj} {obj} under {his} bed.");
    } else {
        options.push_back("In the end, {H} was happy with the {adj} {obj}.");
        options.push_back("That night, {H} put the {adj} {obj} next to {his} bed.");
        if (p.met) options.push_back("From that day on, {H} and {F} shared the {adj} {obj}.");
    }
    w.sentence(options[pick_index(rng, options.size())]);
}

Writer write_story(Rng& rng, const Cast& cast) {
    Writer w{cast, cast.place, {}, {}, {}};
    Plot plot;
    w.sentence(pick(rng, kIntros));
    w.sentence(pick(rng, kFinds));
    int middles = (int)pick_index(rng, 6);   // 0..5, so 3..8 sentences in all
    for (int i = 0; i < middles; i++)
        if (!middle_sentence(rng, w, plot)) break;
    ending_sentence(rng, w, plot);
    return w;
}

// FNV-1a: a fixed, portable hash that decides a story's split.
uint64_t text_hash(const std::string& s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) { h ^= c; h *= 1099511628211ull; }
    return h;
}

const uint64_t kTrainSeed = 0x7472616E;       // "tran"
const uint64_t kValidationSeed = 0x76616C69;  // "vali"

}  // namespace

std::string generate_story(Rng& rng) {
    Cast cast = draw_cast(rng);
    return write_story(rng, cast).text + "\n";
}

std::vector<std::string> generate_stories(uint64_t seed, int count) {
    if (count < 0) fail("story count must not be negative, got " + std::to_string(count));
    Rng rng(seed);
    std::vector<std::string> stories;
    for (int i = 0; i < count; i++) stories.push_back(generate_story(rng));
    return stories;
}

StoryStream::StoryStream(Split s) : train_(s == Split::Train), rng_(train_ ? kTrainSeed : kValidationSeed) {}

std::string StoryStream::next() {
    for (;;) {
        std::string story = generate_story(rng_);
        bool even = text_hash(story) % 2 == 0;
        if (even == train_) return story;
    }
}

std::vector<std::string> story_split(Split s, int count) {
    if (count < 0) fail("story count must not be negative, got " + std::to_string(count));
    StoryStream stream(s);
    std::vector<std::string> stories;
    for (int i = 0; i < count; i++) stories.push_back(stream.next());
    return stories;
}

double mean_story_bytes() {
    static const double mean = [] {
        StoryStream stream(Split::Train);
        size_t bytes = 0;
        for (int i = 0; i < 1000; i++) bytes += stream.next().size();
        return bytes / 1000.0;
    }();
    return mean;
}

RecallProbe ProbeStream::next() {
    Cast cast = draw_cast(rng_);
    Writer w = write_story(rng_, cast);
    // every ending repeats the hero's name, so there is always a recall spot
    size_t at = w.recalls[pick_index(rng_, w.recalls.size())];
    size_t end = w.text.find_first_of(" .,!\"", at);
    RecallProbe probe;
    probe.answer = w.text.substr(at, end - at);
    probe.prompt = w.text.substr(0, at);
    while (!probe.prompt.empty() && probe.prompt.back() == ' ') probe.prompt.pop_back();
    return probe;
}

std::vector<RecallProbe> recall_probes(uint64_t seed, int count) {
    if (count < 0) fail("probe count must not be negative, got " + std::to_string(count));
    ProbeStream stream(seed);
    std::vector<RecallProbe> probes;
    for (int i = 0; i < count; i++) probes.push_back(stream.next());
    return probes;
}

const std::vector<std::string>& story_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (const Person& p : kPeople) v.push_back(p.name);
        return v;
    }();
    return names;
}

const std::vector<std::string>& story_objects() {
    static const std::vector<std::string> objects(std::begin(kObjects), std::end(kObjects));
    return objects;
}
