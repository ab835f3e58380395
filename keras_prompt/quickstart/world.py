"""A small synthetic world of words and sentences, generated deterministically.

Everything the `t5_tiny_demo` backbone ever reads comes from here: the word
lists below (typed in by hand, no external data) and the sentence templates of
`keras_prompt.quickstart.mixture` and `keras_prompt.quickstart.tasks`.
Generation uses NumPy `Generator`s only (no TensorFlow, no global seeds).
"""

# Nouns by category. The category names are label words of the pretraining
# task "topic" (see mixture.py).
CATEGORIES = {
    "animal": [
        "cat", "dog", "horse", "cow", "sheep", "goat", "pig", "rabbit", "mouse",
        "lion", "tiger", "bear", "wolf", "fox", "deer", "monkey", "elephant",
        "zebra", "camel", "duck", "goose", "owl", "eagle", "parrot", "frog",
        "snake", "turtle", "whale", "dolphin", "shark", "bee", "spider",
    ],
    "food": [
        "bread", "cheese", "apple", "banana", "orange", "grape", "cherry",
        "lemon", "pear", "peach", "carrot", "potato", "tomato", "onion", "rice",
        "pasta", "pizza", "soup", "salad", "cake", "cookie", "pie", "egg",
        "butter", "honey", "sandwich", "burger", "noodle", "pancake", "muffin",
        "yogurt", "sausage",
    ],
    "vehicle": [
        "car", "bus", "truck", "train", "bicycle", "boat", "ship", "plane",
        "taxi", "tractor", "van", "scooter", "motorbike", "helicopter",
        "canoe", "tram", "wagon", "jeep", "ferry", "rocket", "sled", "yacht",
        "ambulance", "subway", "glider", "kayak", "trolley", "limousine",
        "minibus", "raft", "balloon", "cart",
    ],
    "tool": [
        "hammer", "saw", "drill", "wrench", "shovel", "rake", "axe", "knife",
        "scissors", "ladder", "rope", "brush", "broom", "bucket", "needle",
        "pliers", "chisel", "spade", "screwdriver", "crowbar", "magnet",
        "funnel", "ruler", "stapler", "hose", "trowel", "sponge", "mallet",
        "clamp", "file", "lever", "pulley",
    ],
    "plant": [
        "tree", "flower", "rose", "tulip", "daisy", "lily", "oak", "pine",
        "maple", "palm", "cactus", "fern", "moss", "grass", "bush", "vine",
        "ivy", "bamboo", "willow", "birch", "cedar", "orchid", "sunflower",
        "lavender", "clover", "mint", "basil", "thyme", "poppy", "violet",
        "herb", "weed",
    ],
    "clothing": [
        "shirt", "dress", "coat", "jacket", "hat", "cap", "scarf", "glove",
        "sock", "shoe", "boot", "sandal", "skirt", "sweater", "vest", "belt",
        "tie", "blouse", "hoodie", "jumper", "cloak", "apron", "robe", "gown",
        "mitten", "slipper", "helmet", "uniform", "tunic", "poncho", "shawl",
        "raincoat",
    ],
}

COLORS = [
    "red", "blue", "green", "yellow", "black", "white", "brown", "pink",
    "purple", "gray", "golden", "silver",
]
SIZES = ["big", "small", "tiny", "huge", "large", "little", "long", "short"]

# Sentiment words: label words of the pretraining task "sentiment" are
# "positive" / "negative".
POSITIVE = [
    "great", "wonderful", "lovely", "brilliant", "superb", "charming",
    "excellent", "delightful", "fantastic", "pleasant", "amazing", "perfect",
    "beautiful", "fine", "nice", "splendid", "marvelous", "terrific", "cheerful",
    "friendly", "fresh", "tasty", "clean", "comfortable",
]
NEGATIVE = [
    "awful", "boring", "dreadful", "terrible", "dull", "clumsy", "horrible",
    "nasty", "poor", "ugly", "rotten", "broken", "dirty", "rude", "stale",
    "gloomy", "miserable", "annoying", "disappointing", "useless", "noisy",
    "smelly", "filthy", "shabby",
]
INTENSIFIERS = ["very", "really", "quite", "rather", "so", "truly", "pretty", "extremely"]

NAMES = [
    "anna", "ben", "carla", "david", "emma", "frank", "grace", "henry", "iris",
    "jack", "kate", "leo", "maria", "nick", "olga", "paul", "rosa", "sam",
    "tina", "victor", "wendy", "yusuf", "zoe", "omar", "lena", "igor",
]
PLACES = [
    "park", "garden", "kitchen", "market", "street", "farm", "beach", "forest",
    "village", "city", "school", "station", "harbor", "field", "shop", "house",
    "yard", "bridge", "hill", "river",
]
TIMES = [
    "today", "yesterday", "this morning", "last night", "on monday",
    "in the evening", "at noon", "last week", "every day", "after lunch",
]
# Verbs whose choice depends on the category, so that the language-modelling
# objectives make the encoder represent each noun's category.
CATEGORY_VERBS = {
    "animal": ["ran", "slept", "jumped", "ate", "played", "hid", "swam", "barked"],
    "food": ["was eaten", "was cooked", "was served", "was baked", "was sliced", "tasted sweet"],
    "vehicle": ["was driven", "was parked", "stopped", "moved fast", "broke down", "was repaired"],
    "tool": ["was used", "was sharpened", "was borrowed", "was cleaned", "fell down", "was stored"],
    "plant": ["grew", "bloomed", "was watered", "was planted", "wilted", "was trimmed"],
    "clothing": ["was worn", "was washed", "was ironed", "was folded", "was sewn", "was bought"],
}
# Chatter words so that the decoder can produce them (they are never labels
# of the pretraining mixture; "yes"/"no" are the labels of a held-out task).
CHATTER = [
    "yes", "no", "maybe", "sure", "okay", "well", "thanks", "hello", "sorry",
    "indeed", "right", "true", "false", "perhaps", "never", "always",
]
# Feelings, only ever in random (unconditional) chatter; "happy"/"sad" are
# the labels of a held-out task.
MOODS = ["happy", "sad", "tired", "calm", "angry", "bored", "proud", "busy"]
FUNCTION_WORDS = [
    "the", "a", "and", "was", "is", "it", "to", "of", "in", "on", "near",
    "with", "i", "you", "we", "they", "he", "she", "my", "our", "saw", "found",
    "said", "asked", "thought", "that", "this", "there", "then", "but",
    "does", "do", "mention", "question", "sentence", "message", "writer",
    "feel", "feels", "how", "what", "answer", "happy", "sad", "talk", "talks",
    "about", "an", "or", "not", "any", "thing", "text", "word", "tell", "me",
    "kind", "mood", "review", "describe", "living", "creature", "here",
    "which", "who", "wrote", "one", "words", "reply", "please", "read",
]

ALL_NOUNS = [noun for nouns in CATEGORIES.values() for noun in nouns]
NOUN_CATEGORY = {noun: category for category, nouns in CATEGORIES.items() for noun in nouns}


def choice(rng, items):
    """One item of `items`, drawn with `rng` (a `numpy.random.Generator`)."""
    return items[int(rng.integers(len(items)))]


def noun_phrase(rng, noun, color=None, size=None, article="the"):
    """E.g. "the big red cat" (color and size are optional)."""
    words = [article]
    if size:
        words.append(size)
    if color:
        words.append(color)
    words.append(noun)
    return " ".join(words)


def story(rng, noun=None):
    """A short sentence about one noun: `(text, noun, color)`."""
    noun = noun or choice(rng, ALL_NOUNS)
    category = NOUN_CATEGORY[noun]
    color = choice(rng, COLORS) if rng.random() < 0.7 else None
    size = choice(rng, SIZES) if rng.random() < 0.4 else None
    phrase = noun_phrase(rng, noun, color, size)
    verb = choice(rng, CATEGORY_VERBS[category])
    form = int(rng.integers(5))
    name, place, time = choice(rng, NAMES), choice(rng, PLACES), choice(rng, TIMES)
    if form == 0:
        text = f"{phrase} {verb} in the {place} {time}"
    elif form == 1:
        text = f"{name} saw that {phrase} {verb} near the {place}"
    elif form == 2:
        text = f"{time} {phrase} {verb}"
    elif form == 3:
        text = f"{name} said {phrase} {verb} {time}"
    else:
        text = f"in the {place} {phrase} {verb}"
    return text, noun, color


def review(rng, positive, noun=None):
    """A short review whose adjectives carry the sentiment: `(text, noun)`."""
    noun = noun or choice(rng, ALL_NOUNS)
    words = POSITIVE if positive else NEGATIVE
    adjective = choice(rng, words)
    intensifier = choice(rng, INTENSIFIERS)
    form = int(rng.integers(5))
    if form == 0:
        text = f"the {noun} was {intensifier} {adjective}"
    elif form == 1:
        text = f"i think the {noun} is {adjective} and {choice(rng, words)}"
    elif form == 2:
        text = f"{intensifier} {adjective} {noun} , {choice(rng, words)} too"
    elif form == 3:
        text = f"we bought the {noun} at the {choice(rng, PLACES)} and it was {adjective}"
    else:
        text = f"what a {adjective} {noun}"
    return text, noun


def chatter(rng):
    """Dialogue filler in which chatter words appear in many positions."""
    a, b = choice(rng, CHATTER), choice(rng, CHATTER)
    name = choice(rng, NAMES)
    noun = choice(rng, ALL_NOUNS)
    form = int(rng.integers(8))
    if form == 6:
        return f"{name} was {choice(rng, MOODS)} {choice(rng, TIMES)}"
    if form == 7:
        return f"{a} , i feel {choice(rng, MOODS)}"
    if form == 0:
        return f"{a} , said {name} , {b}"
    if form == 1:
        return f"{name} asked about the {noun} and they said {a}"
    if form == 2:
        return f"{a} {a} , {name} said , {b} it was the {noun}"
    if form == 3:
        return f"did you see the {noun} ? {a} , {b}"
    if form == 4:
        return f"is it {choice(rng, COLORS)} ? {a}"
    return f"{name} : {a} . {choice(rng, NAMES)} : {b}"


def filler(rng):
    """Loosely grammatical filler over the function words, so that every
    word of the held-out task formats is known to the backbone (as text, not
    as a task format or a label)."""
    length = int(rng.integers(4, 11))
    pool = FUNCTION_WORDS + CHATTER + ALL_NOUNS[::3]
    return " ".join(choice(rng, pool) for _ in range(length))


def vocabulary_sentences():
    """Every word of the world at least once, for the tokenizer."""
    words = (
        ALL_NOUNS + COLORS + SIZES + POSITIVE + NEGATIVE + INTENSIFIERS + NAMES
        + PLACES + TIMES + CHATTER + MOODS + FUNCTION_WORDS + list(CATEGORIES)
        + [v for verbs in CATEGORY_VERBS.values() for v in verbs]
    )
    return [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
