// Chat formats: how a conversation is laid out as the model saw it in fine-tuning. A
// checkpoint carries its format as a Jinja template (GGUF tokenizer.chat_template,
// tokenizer_config.json chat_template); kvshare has no Jinja engine, so it recognises the
// families it knows by their markers and lays turns out itself:
//
//   chatml  "<|im_start|>"     <|im_start|>system\nS<|im_end|>\n
//                              <|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nR<|im_end|>\n
//           (SmolLM2's template adds a system prompt of its own when none is given)
//   llama2  "[INST]"           <s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] R</s><s>[INST] U2 [/INST]
//   zephyr  "<|user|>" and     <|system|>\nS</s>\n<|user|>\nU</s>\n<|assistant|>\nR</s>\n
//           "<|assistant|>"    (Zephyr, TinyLlama-1.1B-Chat)
//
// (S system prompt, U user message, R the reply the model writes, ending in the stop token.)
#pragma once
#include <string>
#include <vector>

enum class ChatFormat { ChatML, Llama2, Zephyr };

struct ChatTemplate {
    ChatFormat format = ChatFormat::ChatML;
    std::string default_system;  // the system prompt the template adds when none is given, or ""
};

// The family of a template's text. An empty or unrecognised template is a clear error that
// names --chat-template; `source` names where the template came from.
ChatTemplate recognise_chat_template(const std::string& jinja, const std::string& source);
// --chat-template NAME: chatml, llama2 or zephyr.
ChatTemplate chat_template_named(const std::string& name);
const char* chat_format_name(ChatFormat f);

// A stretch of a chat's text: text (special tokens' text in it becomes their ids), or the
// model's BOS or EOS, which Llama 2's and Zephyr's formats place as ids.
struct ChatPiece {
    enum Kind { Text, Bos, Eos } kind = Text;
    std::string text;
};

// The conversation's start: BOS when the model asks for one and the format does not place
// its own, then the system prompt (the given one, else the template's default, else none).
std::vector<ChatPiece> chat_opening(const ChatTemplate& t, const std::string& system, bool add_bos);
// A user's message, then what starts the assistant's reply. `first`: the conversation's first
// message (Llama 2 writes the system prompt into it).
std::vector<ChatPiece> chat_user_turn(const ChatTemplate& t, const std::string& message, bool first, const std::string& system);
// What follows the token that ended the reply, before the next user turn ("\n" for ChatML).
std::vector<ChatPiece> chat_after_reply(const ChatTemplate& t);
// The text of the special token that ends a reply in this format ("<|im_end|>"), or "" when it
// is the model's EOS.
std::string chat_end_of_turn(const ChatTemplate& t);
