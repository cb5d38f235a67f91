// kvshare chat: a conversation with a model in its chat format (src/text/chat_template.h).
// The KV cache holds the whole conversation: each turn feeds only its new tokens (the
// token that ended the last reply, what follows it in the format, the user's message, the
// start of the reply), so no turn prefills the history again.
#pragma once
#include "src/model/backend.h"
#include "src/text/chat_template.h"
#include "src/text/sampler.h"
#include "src/text/tokenizer.h"
#include <functional>
#include <string>
#include <vector>

class Chat {
public:
    // be: one sequence, its context the conversation's limit. The system prompt "" is the
    // template's default, if it has one.
    Chat(Backend& be, const Tokenizer& tok, const ChatTemplate& format, const std::string& system, Sampler sampler,
         const PrefillOptions& prefill);

    // Feeds the user's message and samples the reply until a stop token: on_text gets the
    // reply's text as it comes, whole UTF-8 characters only. A turn that does not fit the
    // context is refused before anything is fed; a reply that fills it ends with a clear
    // error after its text so far. Returns the reply's tokens, the stop token not included.
    std::vector<int> reply(const std::string& message, const std::function<void(const std::string&)>& on_text);

    // Every token fed to the model so far, in order (what the KV cache holds).
    const std::vector<int>& history() const { return history_; }

private:
    std::vector<int> encode(const std::vector<ChatPiece>& pieces) const;
    void feed(const std::vector<int>& tokens);  // into the KV cache, then sample the next token
    [[noreturn]] void context_full(const std::string& when) const;

    Backend& be_;
    const Tokenizer& tok_;
    ChatTemplate format_;
    std::string system_;
    Sampler sampler_;
    PrefillOptions prefill_;
    std::vector<int> stops_;       // the model's stop ids and the format's end-of-turn token
    std::vector<int> pending_;     // tokens the next turn feeds first (the opening, or the end of the last reply)
    std::vector<int> history_;
    int next_ = -1;                // the token sampled after the last one fed
    bool first_ = true;
};
