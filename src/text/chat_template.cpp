#include "src/text/chat_template.h"
#include "src/util.h"

const char* chat_format_name(ChatFormat f) { return f == ChatFormat::ChatML ? "chatml" : f == ChatFormat::Llama2 ? "llama2" : "zephyr"; }

ChatTemplate chat_template_named(const std::string& name) {
    ChatTemplate t;
    if (name == "chatml") t.format = ChatFormat::ChatML;
    else if (name == "llama2") t.format = ChatFormat::Llama2;
    else if (name == "zephyr") t.format = ChatFormat::Zephyr;
    else fail("--chat-template: unknown format '" + name + "' (chatml, llama2 or zephyr)");
    return t;
}

// A system prompt written into a ChatML template as plain text, as SmolLM2's is:
// '<|im_start|>system\n' then the prompt, then '<|im_end|>', inside one string literal (the
// line break as a real one or as \n). Text with Jinja or string syntax in it is not one.
static std::string chatml_default_system(const std::string& jinja) {
    const std::string start = "<|im_start|>system";
    for (size_t at = jinja.find(start); at != std::string::npos; at = jinja.find(start, at + 1)) {
        size_t p = at + start.size();
        if (jinja.compare(p, 1, "\n") == 0) p += 1;
        else if (jinja.compare(p, 2, "\\n") == 0) p += 2;
        else continue;
        const size_t end = jinja.find("<|im_end|>", p);
        if (end == std::string::npos) continue;
        const std::string text = jinja.substr(p, end - p);
        if (!text.empty() && text.find_first_of("'\"{}+\\") == std::string::npos) return text;
    }
    return "";
}

ChatTemplate recognise_chat_template(const std::string& jinja, const std::string& source) {
    const std::string hint = "; name the format with --chat-template chatml, llama2 or zephyr";
    if (jinja.empty()) fail(source + " has no chat template" + hint);
    auto has = [&](const char* marker) { return jinja.find(marker) != std::string::npos; };
    ChatTemplate t;
    if (has("<|im_start|>")) {
        t.format = ChatFormat::ChatML;
        t.default_system = chatml_default_system(jinja);
    } else if (has("[INST]")) t.format = ChatFormat::Llama2;
    else if (has("<|user|>") && has("<|assistant|>")) t.format = ChatFormat::Zephyr;
    else fail(source + "'s chat template is not one kvshare recognises (ChatML's <|im_start|>, Llama 2's [INST], Zephyr's <|user|>)" + hint);
    return t;
}

static std::string strip(const std::string& s) {
    const char* space = " \t\n\r\f\v";
    const size_t b = s.find_first_not_of(space);
    return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(space) - b + 1);
}

std::vector<ChatPiece> chat_opening(const ChatTemplate& t, const std::string& system, bool add_bos) {
    std::vector<ChatPiece> out;
    const std::string s = system.empty() ? t.default_system : system;
    // Llama 2's template writes BOS before every [INST] itself
    if (add_bos && t.format != ChatFormat::Llama2) out.push_back({ChatPiece::Bos, ""});
    if (s.empty()) return out;
    if (t.format == ChatFormat::ChatML) out.push_back({ChatPiece::Text, "<|im_start|>system\n" + s + "<|im_end|>\n"});
    else if (t.format == ChatFormat::Zephyr) {
        out.push_back({ChatPiece::Text, "<|system|>\n" + s});
        out.push_back({ChatPiece::Eos, ""});
        out.push_back({ChatPiece::Text, "\n"});
    }
    return out;  // Llama 2: the system prompt goes into the first [INST]
}

std::vector<ChatPiece> chat_user_turn(const ChatTemplate& t, const std::string& message, bool first, const std::string& system) {
    std::vector<ChatPiece> out;
    if (t.format == ChatFormat::ChatML) {
        out.push_back({ChatPiece::Text, "<|im_start|>user\n" + message + "<|im_end|>\n<|im_start|>assistant\n"});
    } else if (t.format == ChatFormat::Llama2) {
        const std::string s = system.empty() ? t.default_system : system;
        const std::string sys = first && !s.empty() ? "<<SYS>>\n" + s + "\n<</SYS>>\n\n" : "";
        out.push_back({ChatPiece::Bos, ""});
        out.push_back({ChatPiece::Text, "[INST] " + strip(sys + message) + " [/INST]"});
    } else {
        out.push_back({ChatPiece::Text, "<|user|>\n" + message});
        out.push_back({ChatPiece::Eos, ""});
        out.push_back({ChatPiece::Text, "\n<|assistant|>\n"});
    }
    return out;
}

std::vector<ChatPiece> chat_after_reply(const ChatTemplate& t) {
    if (t.format == ChatFormat::Llama2) return {};
    return {{ChatPiece::Text, "\n"}};
}

std::string chat_end_of_turn(const ChatTemplate& t) { return t.format == ChatFormat::ChatML ? "<|im_end|>" : ""; }
