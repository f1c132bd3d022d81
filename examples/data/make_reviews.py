"""Writes reviews.csv and review-synonyms.csv for examples/text-reviews-eda.yaml: short product reviews,
`positive` or `negative`, GENERATED FROM TEMPLATES (not real reviews), and a thesaurus of the words they use.
Run: python examples/data/make_reviews.py

Why templates: the example measures EDA's synonym replacement (Wei & Zou 2019) in the case it was made for — a
few hundred labelled rows, and a test set whose opinion words the training rows rarely show. Words follow a
Zipf law within each group of synonyms ("good" often, "splendid" seldom, as in real text), so 300 training
rows miss most of the rare words that the test rows hold. The thesaurus lists the groups (as WordNet would),
but not every word: the words in UNLISTED are used in reviews and missing from it, as a general thesaurus
misses some of a domain's words, and it lists the neutral words (nouns, adverbs) too, so replacement does not
touch opinion words alone. Each review is one or two opinion clauses of one polarity and up to one neutral
clause, joined by "and", without punctuation.
"""

import csv
import random
from pathlib import Path

# Groups of synonyms; within a group the first word is the most frequent (weight 1 / rank ** ZIPF).
POSITIVE_ADJ = [["good", "great", "excellent", "superb", "splendid", "terrific", "outstanding"],
                ["fast", "quick", "speedy", "swift", "rapid", "prompt"],
                ["sturdy", "solid", "robust", "durable", "rugged"],
                ["easy", "simple", "effortless", "painless", "straightforward"],
                ["cheap", "affordable", "inexpensive", "economical", "reasonable"],
                ["nice", "lovely", "pleasant", "delightful", "charming", "gorgeous"]]
NEGATIVE_ADJ = [["bad", "poor", "awful", "terrible", "dreadful", "lousy", "abysmal"],
                ["slow", "sluggish", "tardy", "glacial", "leisurely"],
                ["flimsy", "fragile", "shoddy", "rickety", "brittle"],
                ["hard", "difficult", "awkward", "cumbersome", "fiddly"],
                ["expensive", "overpriced", "pricey", "costly", "exorbitant"],
                ["broken", "faulty", "defective", "damaged", "busted", "dud"]]
POSITIVE_VERB = [["love", "like", "adore", "enjoy", "cherish", "fancy"]]
NEGATIVE_VERB = [["hate", "dislike", "loathe", "detest", "despise", "resent"]]
POSITIVE_FEEL = [["happy", "pleased", "glad", "delighted", "satisfied", "thrilled", "content"]]
NEGATIVE_FEEL = [["unhappy", "disappointed", "upset", "annoyed", "dissatisfied", "displeased", "frustrated"]]
NOUNS = [["battery", "cell"], ["screen", "display", "monitor"], ["delivery", "shipping", "shipment"],
         ["price", "cost"], ["case", "cover", "casing"], ["cable", "cord", "wire", "lead"],
         ["manual", "instructions", "guide", "booklet"], ["seller", "vendor", "merchant", "shop"],
         ["box", "package", "parcel", "packaging"], ["charger", "adapter"], ["speaker", "loudspeaker"],
         ["support", "service", "helpdesk"], ["phone", "handset"], ["keyboard", "keypad"]]
ADVERBS = [["very", "really", "extremely", "truly", "remarkably", "exceptionally"],
           ["quite", "rather", "fairly", "pretty", "somewhat"]]
# Used in reviews, left out of the thesaurus (neither as a word nor as a synonym).
UNLISTED = {"outstanding", "prompt", "rugged", "straightforward", "reasonable", "charming", "gorgeous",
            "abysmal", "leisurely", "brittle", "fiddly", "exorbitant", "dud", "fancy", "resent", "content",
            "frustrated"}
ZIPF = 1.5
ROWS = 2000


def pick(rng: random.Random, groups: list[list[str]]) -> str:
    group = rng.choice(groups)
    return rng.choices(group, weights=[1 / (rank + 1) ** ZIPF for rank in range(len(group))])[0]


def opinion(rng: random.Random, positive: bool) -> str:
    adj, verb, feel = ((POSITIVE_ADJ, POSITIVE_VERB, POSITIVE_FEEL) if positive else
                       (NEGATIVE_ADJ, NEGATIVE_VERB, NEGATIVE_FEEL))
    adv = pick(rng, ADVERBS) + " " if rng.random() < 0.4 else ""
    noun = pick(rng, NOUNS)
    return rng.choice([
        f"the {noun} is {adv}{pick(rng, adj)}",
        f"{adv}{pick(rng, adj)} {noun}",
        f"i {pick(rng, verb)} the {noun}",
        f"i am {adv}{pick(rng, feel)} with the {noun}",
        f"the {noun} was {adv}{pick(rng, adj)} and i {pick(rng, verb)} it",
        f"i was {adv}{pick(rng, feel)} because the {noun} is {pick(rng, adj)}",
    ])


def neutral(rng: random.Random) -> str:
    return rng.choice([
        f"it arrived on {rng.choice(['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'])}",
        f"i bought it for my {rng.choice(['son', 'daughter', 'wife', 'husband', 'mother', 'father', 'office'])}",
        f"i have used it for {rng.choice(['two', 'three', 'four', 'six'])} {rng.choice(['days', 'weeks', 'months'])}",
        f"the {pick(rng, NOUNS)} is {rng.choice(['black', 'white', 'grey', 'blue', 'red', 'silver'])}",
        f"it came with a {pick(rng, NOUNS)}",
    ])


def review(rng: random.Random, positive: bool) -> str:
    clauses = [opinion(rng, positive) for _ in range(rng.choice([1, 1, 2]))]
    if rng.random() < 0.5:
        clauses.insert(rng.randrange(len(clauses) + 1), neutral(rng))
    return " and ".join(clauses)


def thesaurus() -> list[list[str]]:
    """One line per listed word: the word, then the other listed words of its group."""
    lines = []
    for groups in (POSITIVE_ADJ, NEGATIVE_ADJ, POSITIVE_VERB, NEGATIVE_VERB, POSITIVE_FEEL, NEGATIVE_FEEL,
                   NOUNS, ADVERBS):
        for group in groups:
            listed = [w for w in group if w not in UNLISTED]
            lines += [[w] + [s for s in listed if s != w] for w in listed if len(listed) > 1]
    return lines


def main(here: Path = Path(__file__).parent) -> None:
    """Writes both files into `here` (this folder by default)."""
    rng = random.Random(0)
    rows, seen = [], set()
    while len(rows) < ROWS:
        positive = len(rows) % 2 == 0
        text = review(rng, positive)
        if text not in seen:  # no review in both the training and the test rows
            seen.add(text)
            rows.append((text, "positive" if positive else "negative"))
    rng.shuffle(rows)
    with open(here / "reviews.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "sentiment"])
        w.writerows(rows)
    with open(here / "review-synonyms.csv", "w", newline="", encoding="utf-8") as f:
        f.write("# word,synonyms... for examples/text-reviews-eda.yaml; made by make_reviews.py\n")
        csv.writer(f).writerows(thesaurus())


if __name__ == "__main__":
    main()
