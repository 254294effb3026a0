"""Seeded generators for the training / evaluation samples.

Every sample is a list of byte tokens (id = byte value) that starts with BOS and whose
answer ends with EOS, plus a loss weight per token and the spans of the question and the
answer. The prompt layout lives in ONE function, `render`, and is written down in README.md.

Tasks (InfiniteBench formats):
  passkey        needle "The pass key is 12345. Remember it. 12345 is the pass key."
  number_string  needle "The sequence of digits is N. Remember it. N is the sequence of digits."
  kv_retrieval   a JSON object of UUID4 keys and values
  induction      a random string, then the same string again (copy pre-training)
The needle tasks also come in variants whose needle NAME is drawn from NEEDLE_NAMES; the
question asks with that same name, and 0-3 distractor needles with other names and other
values sit in the same context.
"""

import os
import random
import re

BOS_ID = 256
EOS_ID = 257

PASSKEY_INSTRUCTION = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and "
    "memorize it. I will quiz you about the important information there."
)
KV_INSTRUCTION = "Extract the value corresponding to the specified key in the JSON object below."
FILLER_SENTENCES = [
    "The grass is green.",
    "The sky is blue.",
    "The sun is yellow.",
    "Here we go.",
    "There and back again.",
]
KV_ANSWER_PREFIX = "The value associated with the specified key is:"

# (name used in the needle, name used in the question and answer prefix)
CANONICAL_PASSKEY = ("pass key", "pass key")
CANONICAL_NUMBER = ("sequence of digits", "sequence number")

NEEDLE_NAMES = [
    "pass key", "secret code", "magic number", "access number", "special code",
    "security code", "hidden number", "lucky number", "door code", "pin code",
    "safe combination", "vault code", "entry code", "unlock code", "account number",
    "serial number", "ticket number", "order number", "room number", "locker number",
    "login code", "verification code", "confirmation code", "reference number",
    "tracking number", "member id", "badge number", "launch code", "bonus number",
    "winning number", "key number", "master code", "signal code", "radio code",
    "cipher number", "token number", "gate code", "alarm code", "bank code",
    "card number", "voucher code", "promo code", "coupon code", "lottery number",
    "mystery number", "target number", "control number", "station code", "access key",
    "password", "secret number", "private code", "phone extension", "invoice number",
    "batch number", "flight number", "train number", "parcel number", "case number",
    "license number", "project code", "recovery code", "shipping code", "house number",
]
assert len(set(NEEDLE_NAMES)) == len(NEEDLE_NAMES) >= 50

# Prompt layouts people paste (issue 18). Every layout is still rendered by `render`; they differ
# in what goes into the question and the answer prefix, so the runtime needs no special case:
#   split      instruction, question and answer prefix apart (the layout of the first two runs)
#   published  InfiniteBench's published input as the question, no answer prefix: the lead inside
#              the question ('Key: "K"\nThe value associated with the specified key is: ', or
#              'What is the pass key?\n\nThe pass key is'), with InfiniteBench's own instructions
#   lead_only  a published prompt sent as one chat message and split at its last blank line (the
#              server's split): the question is the lead alone, the question line ends the context
#   no_lead    the question alone, no answer prefix: the model writes the lead, then the value
#   ruler      RULER's NIAH wording (needle tasks; kv_retrieval samples fall back to split)
LAYOUTS = ("split", "published", "lead_only", "no_lead", "ruler")
LAYOUT_MIX = (1.0, 0.0, 0.0, 0.0, 0.0)  # train.py --layout-mix sets it; this default = the first runs

# InfiniteBench's templates (its src/prompt.py, the open-model templates)
IB_INSTRUCTION = {
    "passkey": "There is an important info hidden inside a lot of irrelevant text. Find it and "
               "memorize it. I will quiz you about the important information.",
    "number_string": "There is an important info hidden inside a lot of irrelevant text. Find it. "
                     "I will quiz you about the important information there.",
}
IB_LEAD = {"passkey": "The pass key is", "number_string": "The sequence of digits is"}
# RULER's NIAH template (scripts/data/synthetic/constants.py in its repository), single value
RULER_INSTRUCTION = ("Some special magic numbers are hidden within the following text. Make sure to "
                     "memorize it. I will quiz you about the numbers afterwards.")
RULER_ADJECTIVES = ["stormy", "quiet", "bright", "ancient", "frozen", "gentle", "hollow", "rapid",
                    "silent", "golden", "bitter", "clever", "dusty", "eager", "fancy", "giant",
                    "humble", "icy", "jolly", "lively", "mellow", "noisy", "odd", "proud",
                    "rusty", "shiny", "tall", "vivid", "wild", "young"]
RULER_NOUNS = ["ear", "river", "lamp", "garden", "violin", "pencil", "castle", "mirror", "engine",
               "forest", "basket", "candle", "harbor", "island", "jacket", "kettle", "ladder",
               "meadow", "needle", "orchard", "parrot", "quarry", "rocket", "saddle", "tunnel",
               "umbrella", "valley", "wagon", "yacht", "zebra"]


def pick_layout(rng):
    return rng.choices(LAYOUTS, LAYOUT_MIX)[0]


def ruler_key(rng):
    return f"{rng.choice(RULER_ADJECTIVES)}-{rng.choice(RULER_NOUNS)}"


def ruler_needle(key, value):
    return f"One of the special magic numbers for {key} is: {value}."

# kv_short (added at step ~3500 of the bundled run): the kv_retrieval format with 8-hex-digit keys
# and values, so a 128-512-byte object holds 2-15 pairs. With UUIDs only 3-4 pairs fit in the
# window and copying any value already scores 25-33%: after 27M tokens the model still picked a
# value at chance. Many short pairs make matching the key the only way to lower the loss.
TASKS = ("passkey", "number_string", "kv_retrieval", "kv_short", "kv_multi")

# loss weights
W_CONTEXT = 1.0
W_QUESTION = 5.0
W_ANSWER = 5.0
W_INDUCTION_COPY = 1.0


def render(instruction, context, question, answer_prefix):
    """The one prompt layout (the runtime must render prompts identically).

    [instruction "\\n\\n"] context "\\n\\n" question "\\n" answer_prefix
    The instruction part is left out when `instruction` is empty. The answer that the model
    generates follows directly, starting with a space (" 12345"), then EOS. BOS (token 256)
    comes before all of it and is not part of the returned text.
    """
    head = instruction + "\n\n" if instruction else ""
    return head + context + "\n\n" + question + "\n" + answer_prefix


def render_parts(instruction, context, question, answer_prefix):
    """`render` split into (prefix_before_context, context, query) with
    prefix + context + query == render(...). The query (question + answer prefix) is what
    the chunk check scores."""
    head = instruction + "\n\n" if instruction else ""
    query = "\n\n" + question + "\n" + answer_prefix
    assert head + context + query == render(instruction, context, question, answer_prefix)
    return head, context, query


class Sample:
    __slots__ = ("task", "tokens", "weights", "q_span", "a_span", "meta")

    def __init__(self, task, tokens, weights, q_span, a_span, meta=None):
        self.task = task
        self.tokens = tokens
        self.weights = weights
        self.q_span = q_span  # token range of question + "\n" + answer prefix
        self.a_span = a_span  # token range of the answer, EOS included
        self.meta = meta or {}


def _b(s):
    return list(s.encode("utf-8"))


def build_sample(task, instruction, context, question, answer_prefix, answer, meta=None):
    """Tokens: BOS + render(...) + answer + EOS, with weights and spans."""
    head, ctx, query = render_parts(instruction, context, question, answer_prefix)
    toks = [BOS_ID] + _b(head) + _b(ctx)
    w = [0.0] + [W_CONTEXT] * (len(toks) - 1)
    # "\n\n" separating context and question is context-side; the question proper follows.
    sep = _b("\n\n")
    toks += sep
    w += [W_CONTEXT] * len(sep)
    q_start = len(toks)
    qt = _b(query[2:])
    toks += qt
    w += [W_QUESTION] * len(qt)
    a_start = len(toks)
    at = _b(answer) + [EOS_ID]
    toks += at
    w += [W_ANSWER] * len(at)
    return Sample(task, toks, w, (q_start, a_start), (a_start, len(toks)), meta)


def fixed_len(instruction, question, answer_prefix, answer):
    """Tokens the sample takes besides its context."""
    return 1 + len(render(instruction, "", question, answer_prefix).encode()) + len(answer.encode()) + 1


# ---------------------------------------------------------------- needle contexts

def digits(rng, n):
    return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(n - 1))


def needle_text(needle_name, value, part=3):
    """The needle's three sentences; `part` keeps a piece of it, as a chunk boundary that falls
    between its sentences does: 0 the first sentence, 1 the first two, 2 the last two, 3 all,
    4 the last one."""
    s = [f"The {needle_name} is {value}.", "Remember it.", f"{value} is the {needle_name}."]
    return " ".join([s[:1], s[:2], s[1:], s, s[2:]][part])


P_PARTIAL_NEEDLE = 0.2  # share of needles cut at one of their sentence boundaries


def needle_part(rng):
    return rng.choice((0, 1, 2, 4)) if rng.random() < P_PARTIAL_NEEDLE else 3


# Share of needle contexts whose filler is real prose instead of the InfiniteBench sentences
# (added at step 3175 of the bundled run): the licence texts of Debian's base-files, the same
# prose as the runtime's `needle` eval tasks (their names and values are random per sample).
P_PROSE = 0.3
LICENSE_DIR = "/usr/share/common-licenses"
_prose = None


def prose_sentences():
    """Sentences of the licence texts (sorted files, no symlinks or duplicate texts), at most
    160 bytes each so that several fit in a chunk; [] where the folder is missing."""
    global _prose
    if _prose is None:
        out, seen = [], set()
        names = sorted(os.listdir(LICENSE_DIR)) if os.path.isdir(LICENSE_DIR) else []
        for name in names:
            f = os.path.join(LICENSE_DIR, name)
            if os.path.islink(f) or not os.path.isfile(f):
                continue
            text = " ".join(open(f, encoding="utf-8", errors="replace").read().split())
            if not text or text in seen:
                continue
            seen.add(text)
            for piece in re.split(r"(?<=[.!?]) (?=[\"'(\[]?[A-Z])", text):
                if re.search(r"[A-Za-z]{2}", piece) and len(piece) <= 160 and piece.isascii():
                    out.append(piece)
        _prose = out
    return _prose


def filler_context(rng, budget, needles, ragged):
    """Filler sentences with the needles inserted at random sentence boundaries, at most
    `budget` bytes. ragged: the context may start and end in the middle of a sentence
    (as a chunk cut out of a long document does). The filler is the InfiniteBench sentences,
    or (P_PROSE of the time) a run of consecutive licence-text sentences."""
    need = sum(len(n) + 1 for n in needles)
    if need > budget + 1:
        return None
    pool = FILLER_SENTENCES
    if rng.random() < P_PROSE and prose_sentences():
        pool = prose_sentences()
    units = []
    phase = rng.randrange(len(pool))
    lead = ""
    if ragged:
        s = pool[phase]
        lead = s[rng.randrange(1, len(s)):]  # tail of a sentence, not whole
        phase = (phase + 1) % len(pool)
    if lead and len(lead) + 1 + need > budget + 1:
        lead = lead[len(lead) + 1 + need - (budget + 1):]  # keep a shorter tail
    total = len(lead) + 1 if lead else 0
    total += need
    while True:
        s = pool[phase]
        if total + len(s) + 1 > budget + 1:
            break
        units.append(s)
        total += len(s) + 1
        phase = (phase + 1) % len(pool)
    # insert needles at random boundaries (0..len(units))
    slots = sorted(rng.randint(0, len(units)) for _ in needles)
    order = list(needles)
    out = []
    ni = 0
    for i in range(len(units) + 1):
        while ni < len(slots) and slots[ni] == i:
            out.append(order[ni])
            ni += 1
        if i < len(units):
            out.append(units[i])
    if lead:
        out.insert(0, lead)
    text = " ".join(out)
    if ragged:
        rest = budget - len(text) - 1
        if rest > 0:
            text += " " + pool[phase][:rest]
    assert len(text) <= budget
    return text


def pick_names(rng, canonical, n_distract, p_canonical):
    """Returns (target pair, [distractor needle names])."""
    if rng.random() < p_canonical:
        target = canonical
    else:
        nm = rng.choice(NEEDLE_NAMES)
        target = (nm, nm)
    banned = {target[0], target[1], "sequence of digits", "sequence number"}
    pool = [n for n in NEEDLE_NAMES if n not in banned]
    distract = rng.sample(pool, n_distract)
    return target, distract


def needle_phrasing(layout, task, qname, value, use_instr, rng):
    """(instruction, context head, context tail, question, answer prefix, answer) of a needle
    sample in `layout` (all but ruler)."""
    lead = f"The {qname} is"
    if layout == "published" or layout == "lead_only":
        if (task, qname) in (("passkey", "pass key"), ("number_string", "sequence number")):
            lead = IB_LEAD[task]
        instruction = IB_INSTRUCTION[task] if use_instr else ""
        if layout == "published":
            return instruction, "", "", f"What is the {qname}?\n\n{lead}", "", " " + value
        # one chat message split at its last blank line: the instruction opens the context, the
        # question line ends it (in the last chunk only, so half the rows go without it)
        head = instruction + "\n\n" if instruction else ""
        tail = f"\n\nWhat is the {qname}?" if rng.random() < 0.5 else ""
        return "", head, tail, lead, "", " " + value
    instruction = PASSKEY_INSTRUCTION if use_instr else ""
    if layout == "no_lead":
        return instruction, "", "", f"What is the {qname}?", "", f"{lead} {value}"
    return instruction, "", "", f"What is the {qname}?", lead, " " + value


def needle_sample(rng, task, length, p_instruction=0.5, p_canonical=0.35, max_distract=3,
                  p_ragged=0.5, layout=None):
    """A passkey / number_string sample of at most `length` tokens (BOS..EOS) in `layout`
    (drawn from LAYOUT_MIX when None)."""
    layout = layout or pick_layout(rng)
    if layout == "ruler":
        s = ruler_sample(rng, task, length, p_instruction, max_distract, p_ragged)
        if s is not None:
            return s
        layout = "split"
    nd = 5 if task == "passkey" else 10
    canonical = CANONICAL_PASSKEY if task == "passkey" else CANONICAL_NUMBER
    n_distract = rng.randint(0, max_distract)
    use_instr = rng.random() < p_instruction
    ragged = rng.random() < p_ragged
    for _ in range(50):
        (nname, qname), dnames = pick_names(rng, canonical, n_distract, p_canonical)
        value = digits(rng, nd)
        instruction, head, tail, question, prefix, answer = needle_phrasing(layout, task, qname, value, use_instr, rng)
        budget = length - fixed_len(instruction, question, prefix, answer) - len(head) - len(tail)
        needles = [needle_text(nname, value, needle_part(rng))]
        for dn in dnames:
            dv = digits(rng, nd if rng.random() < 0.8 else (15 - nd))
            while dv == value:
                dv = digits(rng, nd)
            needles.append(needle_text(dn, dv, needle_part(rng)))
        tgt = needles[0]
        rng.shuffle(needles)
        ctx = filler_context(rng, budget, needles, ragged)
        if ctx is not None:
            return build_sample(task, instruction, head + ctx + tail, question, prefix, answer,
                                {"value": value, "name": qname, "needle": tgt, "layout": layout})
        # does not fit: fewer distractors, then no instruction
        if n_distract > 0:
            n_distract -= 1
        elif use_instr:
            use_instr = False
        elif p_canonical > 0:
            p_canonical = 0.0  # the canonical number_string needle is long
        # else: try another (shorter) random name
    raise ValueError(f"{task} does not fit in {length} tokens")


def ruler_sample(rng, task, length, p_instruction, max_distract, p_ragged):
    """A needle sample in RULER's NIAH wording (key: adjective-noun, value: the task's digits or
    RULER's 7), with RULER's answer prefix half the time and without any lead otherwise; None
    where it does not fit in `length`."""
    nd = rng.choice((5 if task == "passkey" else 10, 7))
    n_distract = rng.randint(0, max_distract)
    use_instr = rng.random() < p_instruction
    ragged = rng.random() < p_ragged
    with_prefix = rng.random() < 0.5
    for _ in range(8):
        keys = []
        while len(keys) < 1 + n_distract:
            k = ruler_key(rng)
            if k not in keys:
                keys.append(k)
        value = digits(rng, nd)
        instruction = RULER_INSTRUCTION if use_instr else ""
        question = f"What are all the special magic numbers for {keys[0]} mentioned in the provided text?"
        lead = f"The special magic number for {keys[0]} mentioned in the provided text is"
        prefix, answer = (lead, " " + value) if with_prefix else ("", f"{lead} {value}")
        budget = length - fixed_len(instruction, question, prefix, answer)
        needles = [ruler_needle(keys[0], value)]
        for k in keys[1:]:
            dv = digits(rng, nd)
            while dv == value:
                dv = digits(rng, nd)
            needles.append(ruler_needle(k, dv))
        tgt = needles[0]
        rng.shuffle(needles)
        ctx = filler_context(rng, budget, needles, ragged)
        if ctx is not None:
            return build_sample(task, instruction, ctx, question, prefix, answer,
                                {"value": value, "name": keys[0], "needle": tgt, "layout": "ruler"})
        if n_distract > 0:
            n_distract -= 1
        elif use_instr:
            use_instr = False
        else:
            return None
    return None


# ---------------------------------------------------------------- kv retrieval

def uuid4(rng):
    b = [rng.randrange(256) for _ in range(16)]
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = "".join(f"{x:02x}" for x in b)
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def kv_pair_text(k, v):
    return f'"{k}": "{v}"'


def kv_question(key):
    return f'Key: "{key}"'


def kv_context(rng, budget, ragged):
    """Returns (context, key, value) or None. Full object: '{' + pairs + '}' with as many
    pairs as fit; ragged: a window cut out of a longer object, the target pair whole."""
    pair_len = 2 + 36 + 4 + 36 + 1  # '"k": "v"'
    if not ragged:
        n = (budget - 2 + 2) // (pair_len + 2)
        if n < 1:
            return None
        pairs = [(uuid4(rng), uuid4(rng)) for _ in range(n)]
        text = "{" + ", ".join(kv_pair_text(k, v) for k, v in pairs) + "}"
        assert len(text) <= budget
        k, v = rng.choice(pairs)
        return text, k, v
    if budget < pair_len:
        return None
    n = budget // (pair_len + 2) + 3
    pairs = [(uuid4(rng), uuid4(rng)) for _ in range(n)]
    text = "{" + ", ".join(kv_pair_text(k, v) for k, v in pairs) + "}"
    ti = rng.randrange(n)
    k, v = pairs[ti]
    ps = text.index(kv_pair_text(k, v))
    pe = ps + pair_len
    lo = max(0, pe - budget)
    hi = min(ps, len(text) - budget)
    if hi < lo:
        lo = hi = max(0, min(ps, len(text) - budget))
    start = rng.randint(lo, hi)
    window = text[start:start + budget]
    assert kv_pair_text(k, v) in window
    return window, k, v


def kv_phrasing(layout, key, value, use_instr, space):
    """(instruction, context head, question, answer prefix, answer) of a kv_retrieval sample."""
    instruction = KV_INSTRUCTION if use_instr else ""
    if layout == "published":  # InfiniteBench's input, its trailing space kept or trimmed
        return instruction, "", kv_question(key) + "\n" + KV_ANSWER_PREFIX + space, "", " " + value
    if layout == "lead_only":  # one chat message: no blank line inside the question, space trimmed
        head = instruction + "\n\n" if instruction else ""
        return "", head, kv_question(key) + "\n" + KV_ANSWER_PREFIX, "", " " + value
    if layout == "no_lead":
        return instruction, "", kv_question(key), "", KV_ANSWER_PREFIX + " " + value
    return instruction, "", kv_question(key), KV_ANSWER_PREFIX, " " + value


def kv_sample(rng, length, p_instruction=0.5, p_ragged=0.5, layout=None):
    layout = layout or pick_layout(rng)
    use_instr = rng.random() < p_instruction
    ragged = rng.random() < p_ragged
    probe_key, probe_value = "0" * 36, "0" * 36
    space = rng.choice(("", " "))
    for _ in range(3):
        instruction, head, question, prefix, answer = kv_phrasing(layout, probe_key, probe_value, use_instr, space)
        budget = length - fixed_len(instruction, question, prefix, answer) - len(head)
        r = kv_context(rng, budget, ragged)
        if r is not None:
            ctx, k, v = r
            instruction, head, question, prefix, answer = kv_phrasing(layout, k, v, use_instr, space)
            return build_sample("kv_retrieval", instruction, head + ctx, question, prefix, answer,
                                {"value": v, "key": k, "layout": layout})
        if use_instr:
            use_instr = False
        elif not ragged:
            ragged = True
        else:
            break
    raise ValueError(f"kv_retrieval does not fit in {length} tokens")


KV_MIN_LENGTH = fixed_len("", kv_question("0" * 36), KV_ANSWER_PREFIX, " " + "0" * 36) + 79  # one pair


# ---------------------------------------------------------------- induction

ALPHABETS = [
    "".join(chr(c) for c in range(32, 127)),
    "0123456789",
    "0123456789abcdef",
    "abcdefghijklmnopqrstuvwxyz ",
]


def induction_sample(rng, length):
    """BOS + s + s (cut to `length` tokens): the second copy is learned."""
    alpha = rng.choice(ALPHABETS)
    n = (length - 1 + 1) // 2
    s = "".join(rng.choice(alpha) for _ in range(n))
    body = _b(s)
    toks = [BOS_ID] + body + body
    toks = toks[:length]
    w = [0.0] * (1 + n) + [W_INDUCTION_COPY] * (len(toks) - 1 - n)
    return Sample("induction", toks, w, (1 + n, 1 + n), (1 + n, len(toks)), {})


def kv_short_sample(rng, length, p_instruction=0.5):
    """kv_retrieval's layout with 8-hex-digit keys and values, as many pairs as fit (>= 2)."""
    hexs = lambda: "".join(rng.choice("0123456789abcdef") for _ in range(8))
    instruction = KV_INSTRUCTION if rng.random() < p_instruction else ""
    budget = length - fixed_len(instruction, kv_question("0" * 8), KV_ANSWER_PREFIX, " " + "0" * 8)
    n = (budget - 2 + 2) // (len(kv_pair_text("0" * 8, "0" * 8)) + 2)
    if n < 2 and instruction:
        return kv_short_sample(rng, length, 0.0)
    if n < 2:
        raise ValueError(f"kv_short does not fit in {length} tokens")
    pairs = []
    keys = set()
    while len(pairs) < n:
        k = hexs()
        if k not in keys:
            keys.add(k)
            pairs.append((k, hexs()))
    k, v = rng.choice(pairs)
    ctx = "{" + ", ".join(kv_pair_text(a, b) for a, b in pairs) + "}"
    return build_sample("kv_short", instruction, ctx, kv_question(k), KV_ANSWER_PREFIX, " " + v,
                        {"value": v, "key": k})


def kv_multi_sample(rng, length, p_instruction=0.5, n_hex=None, p_repeat=0.5):
    """Associative recall with many queries per sample (added 2026-12-02, warm start from the
    bundled run): an object of short hex keys and values (4-12 digits, one length per sample),
    then several rounds of the kv_retrieval question, each answered and closed with EOS:

        {"k1": "v1", ...}\n\nKey: "k3"\nThe value ... is: v3<EOS>\n\nKey: "k1"\n... v1<EOS>

    One kv_retrieval sample teaches key matching once (its first value byte); a multi-query
    sample teaches it 3-6 times in the same tokens, as the associative-recall benchmarks do.
    Keys are asked without repeats; the question's key bytes are weighted as context.
    Half the rows (p_repeat, from step ~800 of the second run) ask in the repeat form instead:
    the asked pairs again as an object, each value right after its key."""
    if n_hex is None:
        n_hex = rng.randint(4, 12)
    hexs = lambda: "".join(rng.choice("0123456789abcdef") for _ in range(n_hex))
    instruction = KV_INSTRUCTION if rng.random() < p_instruction else ""
    round_len = len(("\n\n" + kv_question("0" * n_hex) + "\n" + KV_ANSWER_PREFIX + " " + "0" * n_hex).encode()) + 1
    pair_len = len(kv_pair_text("0" * n_hex, "0" * n_hex)) + 2
    head = _b(instruction + "\n\n") if instruction else []
    budget = length - 1 - len(head)
    n_pairs = max(2, min(int(budget * rng.uniform(0.35, 0.65)), budget - round_len) // pair_len)
    n_rounds = min(n_pairs, (budget - (n_pairs * pair_len)) // round_len)
    if n_rounds < 1:
        if instruction:
            return kv_multi_sample(rng, length, 0.0, n_hex, p_repeat)
        if n_hex > 4:
            return kv_multi_sample(rng, length, 0.0, n_hex - 2, p_repeat)
        raise ValueError(f"kv_multi does not fit in {length} tokens")
    pairs, keys = [], set()
    while len(pairs) < n_pairs:
        k = hexs()
        if k not in keys:
            keys.add(k)
            pairs.append((k, hexs()))
    ctx = "{" + ", ".join(kv_pair_text(a, b) for a, b in pairs) + "}"
    toks = [BOS_ID] + head + _b(ctx)
    w = [0.0] + [W_CONTEXT] * (len(toks) - 1)
    spans = []
    if rng.random() < p_repeat:
        # the repeat form: asked pairs again as an object, the value right after its key
        # (one-hop recall, as an induction head over the key's last bytes does it)
        n_rep = min(n_pairs, (budget - len(ctx) - 4) // pair_len)
        toks += _b("\n\n{")
        w += [W_CONTEXT] * 3
        for i, (k, v) in enumerate(rng.sample(pairs, n_rep)):
            kt = _b(('", ' if i else "") + '"' + k + '": "')
            toks += kt
            w += [W_CONTEXT] * len(kt)
            a0 = len(toks)
            toks += _b(v)
            w += [W_ANSWER] * n_hex
            spans.append((a0, len(toks)))
        toks += _b('"}') + [EOS_ID]
        w += [W_CONTEXT] * 3
        assert len(toks) <= length, (len(toks), length)
        return Sample("kv_multi", toks, w, spans[0], spans[0], {"a_spans": spans, "n_pairs": n_pairs, "repeat": True})
    q_span = None
    for i, (k, v) in enumerate(rng.sample(pairs, n_rounds)):
        q = _b("\n\n" + kv_question(k) + "\n" + KV_ANSWER_PREFIX)
        q0 = len(toks)
        toks += q
        # the "\n\n" after an EOS is where a next round may or may not start: not learned
        w += ([0.0, 0.0] if i else [W_CONTEXT] * 2) + [W_CONTEXT] * (len(q) - 2)
        a0 = len(toks)
        toks += _b(" " + v) + [EOS_ID]
        w += [W_ANSWER] * (len(toks) - a0)
        spans.append((a0, len(toks)))
        if q_span is None:
            q_span = (q0 + 2, a0)
    assert len(toks) <= length, (len(toks), length)
    return Sample("kv_multi", toks, w, q_span, spans[0], {"a_spans": spans, "n_pairs": n_pairs})


def task_sample(rng, task, length):
    if task == "kv_multi":
        return kv_multi_sample(rng, length)
    if task == "induction":
        return induction_sample(rng, length)
    if task == "kv_retrieval":
        return kv_sample(rng, length)
    if task == "kv_short":
        return kv_short_sample(rng, length)
    return needle_sample(rng, task, length)


def tasks_for_length(length):
    if length < 100:
        return ()
    if length < KV_MIN_LENGTH:
        return ("passkey", "number_string", "kv_short", "kv_multi")
    return TASKS


def random_task_sample(rng, length, weights=None):
    """A sample of a task drawn for this length; `weights` maps task -> relative weight
    (default: uniform)."""
    tasks = tasks_for_length(length)
    if not weights:
        return task_sample(rng, rng.choice(tasks), length)
    return task_sample(rng, rng.choices(tasks, [weights.get(t, 1.0) for t in tasks])[0], length)


if __name__ == "__main__":
    # print a few samples for inspection
    import sys
    L = int(sys.argv[1]) if len(sys.argv) > 1 else 513
    r = random.Random(0)
    for t in list(tasks_for_length(L)) + ["induction"]:
        s = task_sample(r, t, L)
        txt = bytes(x for x in s.tokens if x < 256).decode("utf-8", "replace")
        print(f"=== {t} len={len(s.tokens)} q={s.q_span} a={s.a_span}")
        print(txt)
