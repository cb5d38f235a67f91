#include "src/model/plan.h"
#include "src/util.h"
#include <algorithm>
#include <fstream>
#include <sys/stat.h>

// ---------------------------------------------------------------------------
// map validation and derived fields

Plan make_plan(std::vector<int> source, bool diag_all, const std::string& name) {
    const int L = (int)source.size();
    if (L == 0) fail("plan '" + name + "' is empty");
    for (int i = 0; i < L; i++)
        if (source[i] < 0 || source[i] >= L)
            fail("plan '" + name + "': layer " + std::to_string(i) + " reads layer " +
                 std::to_string(source[i]) + ", but the model has layers 0.." + std::to_string(L - 1));
    // follow each chain to a layer that is its own source
    std::vector<int> resolved(L);
    for (int i = 0; i < L; i++) {
        int j = i;
        for (int steps = 0; source[j] != j; steps++) {
            if (steps > L)
                fail("plan '" + name + "': layer " + std::to_string(i) +
                     " is on a cycle of sources with no KV layer (a KV layer reads itself)");
            j = source[j];
        }
        resolved[i] = j;
    }
    Plan p;
    p.name = name;
    p.source = resolved;
    p.diag_all = diag_all;
    p.kv_slot.assign(L, -1);
    for (int i = 0; i < L; i++)
        if (p.source[i] == i) {
            p.kv_slot[i] = (int)p.kv_layers.size();
            p.kv_layers.push_back(i);
        }
    for (int i = 0; i < L; i++) p.kv_slot[i] = p.kv_slot[p.source[i]];
    // cyclic blocks: from a layer reading upward to the highest source reachable, grown until stable
    for (int i = 0; i < L;) {
        if (p.source[i] <= i) { i++; continue; }
        Block b{i, p.source[i]};
        for (bool grew = true; grew;) {
            grew = false;
            for (int l = b.first; l <= b.last; l++)
                if (p.source[l] > b.last) { b.last = p.source[l]; grew = true; }
        }
        p.blocks.push_back(b);
        i = b.last + 1;
    }
    return p;
}

UpwardRule parse_upward_rule(const std::string& name) {
    if (name == "paper") return UpwardRule::Paper;
    if (name == "authors") return UpwardRule::Authors;
    fail("--upward-rule: unknown rule '" + name + "' (paper, authors)");
}

std::string Plan::map_string() const {
    std::string s;
    for (size_t i = 0; i < source.size(); i++) s += (i ? "," : "") + std::to_string(source[i]);
    return s;
}

std::string Plan::spec() const { return map_string() + (diag_all ? ",diag=all" : ""); }

// ---------------------------------------------------------------------------
// named plans

namespace {

enum class Target { Bottom, Middle, Top };

int target_of(int a, int b, Target t) {
    return t == Target::Bottom ? a : t == Target::Top ? b : (a + b) / 2;
}

// Layers [a, b] all read one target; the rest keep their own KV.
void share_block(std::vector<int>& source, int a, int b, Target t) {
    int target = target_of(a, b, t);
    for (int i = a; i <= b; i++) source[i] = target;
}

std::vector<int> identity(int L) {
    std::vector<int> s(L);
    for (int i = 0; i < L; i++) s[i] = i;
    return s;
}

void need(bool ok, const std::string& spec, const std::string& why) {
    if (!ok) fail("plan '" + spec + "': " + why);
}

std::vector<int> named_map(const std::string& spec, const std::string& kind, const std::string& arg, int L) {
    auto count = [&](const std::string& what) {
        need(!arg.empty(), spec, "needs ':" + what + "'");
        return parse_int(arg, "plan '" + spec + "'");
    };
    std::vector<int> s = identity(L);
    if (kind == "standard") {
        need(arg.empty(), spec, "takes no argument");
        return s;
    }
    if (kind == "yoco") {
        need(arg.empty(), spec, "takes no argument");
        need(L >= 2, spec, "needs at least 2 layers");
        share_block(s, L / 2 - 1, L - 1, Target::Bottom);  // = pizza-bottom:L/2
        return s;
    }
    if (kind == "cla") {
        int g = count("g");
        need(g >= 1 && g <= L, spec, "group size must be 1.." + std::to_string(L));
        for (int a = 0; a < L; a += g) share_block(s, a, std::min(a + g, L) - 1, Target::Bottom);
        return s;
    }
    if (kind == "lckv") {
        int w = count("w");
        need(w >= 0 && w <= L - 1, spec, "warmup layers must be 0.." + std::to_string(L - 1));
        int bottom = (w + 1) / 2, top = w / 2;
        share_block(s, bottom, L - 1 - top, Target::Top);  // = sandwich-top:w+1
        return s;
    }
    size_t dash = kind.find('-');
    need(dash != std::string::npos, spec, "unknown plan (see `kvshare plans --layers L`)");
    std::string family = kind.substr(0, dash), where = kind.substr(dash + 1);
    Target t;
    if (where == "bottom") t = Target::Bottom;
    else if (where == "middle") t = Target::Middle;
    else if (where == "top") t = Target::Top;
    else fail("plan '" + spec + "': the target must be bottom, middle or top");
    int l = count("l");
    need(l >= 1 && l <= L, spec, "KV layers must be 1.." + std::to_string(L) + " for a " +
                                     std::to_string(L) + "-layer model");
    if (family == "pizza") {
        share_block(s, l - 1, L - 1, t);
    } else if (family == "sandwich") {
        int bottom = (l - 1 + 1) / 2, top = (l - 1) / 2;
        share_block(s, bottom, L - 1 - top, t);
    } else if (family == "lasagna") {
        int base = L / l, extra = L % l, a = 0;
        for (int g = 0; g < l; g++) {
            int size = base + (g < extra ? 1 : 0);
            share_block(s, a, a + size - 1, t);
            a += size;
        }
    } else {
        fail("plan '" + spec + "': unknown family '" + family + "' (pizza, sandwich, lasagna)");
    }
    return s;
}

// Named plans and maps use letters, digits, '-', ':', ',' and '='; a spec with a '/' or a
// '.' can only be a path, so it must be a file (a plan file is "calibrated.plan").
bool names_a_file(const std::string& spec) {
    struct stat st;
    return (stat(spec.c_str(), &st) == 0 && S_ISREG(st.st_mode)) || spec.find_first_of("/.") != std::string::npos;
}

// A plan file holds a few hundred bytes of text; a megabyte is not a plan file.
const size_t kMaxPlanFileBytes = 1 << 20;

std::string read_plan_file(const std::string& path) {
    const std::string text = read_text_file(path, "plan file", kMaxPlanFileBytes);
    for (size_t i = 0; i < text.size(); i++) {
        const unsigned char c = (unsigned char)text[i];
        if (c == 0 || (c < 32 && c != '\n' && c != '\r' && c != '\t'))
            fail("plan file '" + path + "' holds a control byte (" + std::to_string(c) + ") at offset " + std::to_string(i) +
                 ": not a text file");
    }
    return text;
}

std::string strip_comments(const std::string& text) {
    std::string out;
    for (const std::string& line : split(text, '\n')) {
        std::string l = line.substr(0, line.find('#'));
        for (char c : l)
            if (c != ' ' && c != '\t' && c != '\r') out += c;
        if (!l.empty() && !out.empty() && out.back() != ',') out += ',';
    }
    while (!out.empty() && out.back() == ',') out.pop_back();
    return out;
}

}  // namespace

Plan parse_plan(const std::string& spec_in, int L) {
    if (L <= 0) fail("plan: the model has no layers");
    if (spec_in.empty()) fail("plan: the plan is empty (a name such as standard, a map such as 0,0,2,2, or a file)");
    std::string spec = spec_in;
    if (names_a_file(spec)) {
        spec = strip_comments(read_plan_file(spec));
        if (spec.empty()) fail("plan file '" + spec_in + "' holds no plan");
    }
    std::vector<std::string> parts = split(spec, ',');
    bool diag_all = false;
    if (!parts.empty() && parts.back() == "diag=all") {
        diag_all = true;
        parts.pop_back();
    }
    if (parts.empty() || parts[0].empty()) fail("plan '" + spec_in + "' is empty");
    std::vector<int> source;
    if (parts.size() == 1 && !(parts[0][0] >= '0' && parts[0][0] <= '9')) {
        std::string kind = parts[0], arg;
        size_t colon = kind.find(':');
        if (colon != std::string::npos) { arg = kind.substr(colon + 1); kind = kind.substr(0, colon); }
        source = named_map(spec_in, kind, arg, L);
    } else {
        for (const std::string& p : parts) {
            if (p == "diag=all") fail("plan '" + spec_in + "': diag=all must come last");
            source.push_back(parse_int(p, "plan '" + spec_in + "'"));
        }
        if ((int)source.size() != L)
            fail("plan '" + spec_in + "' maps " + std::to_string(source.size()) +
                 " layers, but the model has " + std::to_string(L));
    }
    return make_plan(source, diag_all, spec_in);
}

std::vector<std::string> named_plans(int L, int kv) {
    std::vector<std::string> names;
    auto add = [&](const std::string& n) {
        try {
            Plan p = parse_plan(n, L);
            if (kv <= 0 || p.n_kv_layers() == kv) names.push_back(n);
        } catch (const std::runtime_error&) {}  // not defined for this L
    };
    add("standard");
    std::vector<int> ls;
    if (kv > 0) ls.push_back(kv);
    else for (int l = 1; l < L; l *= 2) ls.push_back(l);
    for (const char* fam : {"pizza", "sandwich", "lasagna"})
        for (const char* where : {"bottom", "middle", "top"})
            for (int l : ls) add(std::string(fam) + "-" + where + ":" + std::to_string(l));
    for (int g = 2; g <= L; g *= 2) add("cla:" + std::to_string(g));
    add("yoco");
    for (int w = 0; w <= 2 && w < L; w += 2) add("lckv:" + std::to_string(w));
    return names;
}

void write_plan_file(const std::string& path, const Plan& plan, const std::string& comment) {
    std::string text;
    for (const std::string& line : split(comment, '\n')) text += "# " + line + "\n";
    write_file_atomic(path, text + plan.spec() + "\n");
}
