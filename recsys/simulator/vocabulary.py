"""The shop's words: departments, product types, features, brands, colours and materials.

A product's title is built from these words ("Northpeak waterproof trail running shoe, men's,
grey"), and a shopper's taste is a weight on each of them. So whatever a shopper likes can be read
from the titles of what they clicked, which is what a language model fine-tuned on the log learns.

Words shared across categories carry taste across them: a shopper who likes "waterproof" likes it
on shoes, jackets, backpacks and watches alike. The vocabulary is plain data (``CATEGORIES``,
``BRANDS``); it is stored with every saved world, so a world reloads with the words it was made of.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from recsys.text import PRICE_BANDS as TEXT_PRICE_BANDS

APPAREL_COLOURS = ("black", "grey", "navy", "olive", "red", "blue", "white", "beige", "forest green",
                   "burgundy", "orange", "pink")
GEAR_COLOURS = ("black", "grey", "navy", "olive", "red", "blue", "orange", "yellow")
DEVICE_COLOURS = ("black", "white", "silver", "midnight blue", "rose gold")
COOKWARE_MATERIALS = ("cast iron", "stainless steel", "copper", "carbon steel", "ceramic", "enamelled")
COFFEE_FINISHES = ("matte black", "brushed steel", "white", "copper", "glass")
HOME_MATERIALS = ("oak", "linen", "ceramic", "brass", "rattan", "velvet", "walnut")
BEDDING_MATERIALS = ("cotton percale", "linen", "bamboo", "flannel", "sateen")
SIZES = ("30 ml", "50 ml", "100 ml", "travel size")
PLAY_COLOURS = ("red", "blue", "yellow", "green", "multicolour")

GENDERS = ("men's", "women's", "unisex", "none")
"""Fit words; "none" marks products that have no fit (a frying pan). Shoppers have a fit of their own."""

PRICE_BANDS: tuple[str, ...] = tuple(words for _, words in TEXT_PRICE_BANDS)
"""The price-band words of ``recsys.text``, so a shopper's taste for a band is a taste for the words the model reads."""

LINES = ("Ridge", "Summit", "Flow", "Pulse", "Vista", "Echo", "Nova", "Terra", "Drift", "Aero", "Core",
         "Zen", "Atlas", "Glide", "Orbit", "Haven", "Bolt", "Crest", "Luxe", "Prime")
"""Model-line names: realistic noise in titles, carrying no taste."""


@dataclass(frozen=True)
class Category:
    """One shop category: its product types, features, finishes (colour, material or size) and price."""

    name: str
    """Category name, the items table's ``category`` column."""
    department: str
    """The department it belongs to (an attribute)."""
    types: tuple[str, ...]
    """Product types, the noun of the title ("trail running shoe")."""
    tags: tuple[str, ...]
    """Feature words, the adjective of the title ("waterproof")."""
    finishes: tuple[str, ...]
    """Colours, materials or sizes the products come in."""
    finish_kind: str
    """Attribute key of the finish: "colour", "material" or "size"."""
    gendered: bool
    """Whether products come in men's / women's / unisex fits."""
    base_price: float
    """Typical price of a mid-range product, in the shop's currency."""
    weight: float
    """Relative share of the catalog."""


@dataclass(frozen=True)
class Brand:
    """A brand: the categories it sells in and its usual price tier (0 budget .. 3 luxury)."""

    name: str
    """Brand name, the items table's ``brand`` column."""
    tier: int
    """Usual price band index into PRICE_BANDS."""
    categories: tuple[str, ...]
    """Category names it sells in."""


CATEGORIES: tuple[Category, ...] = (
    Category("Running shoes", "Sports", ("trail running shoe", "road running shoe", "racing shoe", "walking shoe"),
             ("waterproof", "lightweight", "cushioned", "breathable", "wide-fit"), APPAREL_COLOURS, "colour",
             True, 95.0, 1.4),
    Category("Hiking boots", "Outdoor", ("hiking boot", "approach shoe", "winter boot"),
             ("waterproof", "insulated", "leather", "vegan", "lightweight"), APPAREL_COLOURS, "colour",
             True, 140.0, 1.0),
    Category("Jackets", "Outdoor", ("rain jacket", "down jacket", "fleece jacket", "softshell jacket", "windbreaker"),
             ("waterproof", "insulated", "packable", "windproof", "recycled"), APPAREL_COLOURS, "colour",
             True, 150.0, 1.3),
    Category("Tops", "Apparel", ("t-shirt", "long-sleeve top", "polo shirt", "hoodie", "tank top"),
             ("organic cotton", "moisture-wicking", "slim-fit", "oversized", "merino"), APPAREL_COLOURS, "colour",
             True, 30.0, 1.8),
    Category("Trousers", "Apparel", ("jeans", "chinos", "hiking trousers", "joggers", "shorts"),
             ("stretch", "slim-fit", "relaxed-fit", "quick-dry", "organic cotton"), APPAREL_COLOURS, "colour",
             True, 60.0, 1.4),
    Category("Knitwear", "Apparel", ("crewneck sweater", "cardigan", "turtleneck", "zip sweater"),
             ("merino", "cashmere", "cable-knit", "recycled", "lightweight"), APPAREL_COLOURS, "colour",
             True, 85.0, 0.9),
    Category("Swimwear", "Sports", ("swimsuit", "swim shorts", "rash guard", "swim goggles"),
             ("chlorine-resistant", "quick-dry", "UV-protective", "recycled", "anti-fog"), APPAREL_COLOURS,
             "colour", True, 40.0, 0.7),
    Category("Backpacks", "Outdoor", ("daypack", "hiking backpack", "laptop backpack", "duffel bag", "roll-top bag"),
             ("waterproof", "lightweight", "anti-theft", "padded", "recycled"), GEAR_COLOURS, "colour",
             False, 75.0, 1.0),
    Category("Camping", "Outdoor", ("tent", "sleeping bag", "camping stove", "headlamp", "camping chair"),
             ("ultralight", "four-season", "compact", "family-size", "rechargeable"), GEAR_COLOURS, "colour",
             False, 110.0, 1.0),
    Category("Cycling", "Sports", ("bike helmet", "bike light", "cycling gloves", "bike lock", "saddle bag"),
             ("reflective", "rechargeable", "aero", "lightweight", "weatherproof"), GEAR_COLOURS, "colour",
             False, 55.0, 0.8),
    Category("Fitness", "Sports", ("yoga mat", "resistance bands", "dumbbell set", "foam roller", "kettlebell"),
             ("non-slip", "eco-friendly", "adjustable", "extra-thick", "compact"), GEAR_COLOURS, "colour",
             False, 45.0, 1.0),
    Category("Headphones", "Electronics", ("over-ear headphones", "wireless earbuds", "sports earphones",
                                           "on-ear headphones"),
             ("noise-cancelling", "wireless", "waterproof", "foldable", "studio"), DEVICE_COLOURS, "colour",
             False, 120.0, 1.0),
    Category("Smartwatches", "Electronics", ("smartwatch", "fitness tracker", "GPS running watch", "sleep tracker"),
             ("waterproof", "solar", "AMOLED", "long-battery", "heart-rate"), DEVICE_COLOURS, "colour",
             False, 210.0, 0.8),
    Category("Phone accessories", "Electronics", ("phone case", "charging cable", "power bank", "wireless charger",
                                                  "screen protector"),
             ("rugged", "magnetic", "fast-charging", "slim", "biodegradable"), DEVICE_COLOURS, "colour",
             False, 25.0, 1.2),
    Category("Cookware", "Kitchen", ("frying pan", "saucepan", "dutch oven", "wok", "stockpot"),
             ("non-stick", "induction-ready", "oven-safe", "PFOA-free", "hammered"), COOKWARE_MATERIALS,
             "material", False, 65.0, 1.0),
    Category("Coffee", "Kitchen", ("espresso machine", "coffee grinder", "pour-over kettle", "french press",
                                   "moka pot"),
             ("programmable", "burr", "gooseneck", "insulated", "compact"), COFFEE_FINISHES, "finish",
             False, 90.0, 0.8),
    Category("Home decor", "Home", ("table lamp", "throw cushion", "wall mirror", "scented candle", "vase"),
             ("handmade", "minimalist", "vintage", "dimmable", "scandinavian"), HOME_MATERIALS, "material",
             False, 40.0, 1.2),
    Category("Bedding", "Home", ("duvet cover", "pillow", "weighted blanket", "mattress topper", "fitted sheet"),
             ("organic cotton", "cooling", "hypoallergenic", "king-size", "stonewashed"), BEDDING_MATERIALS,
             "material", False, 70.0, 0.9),
    Category("Skincare", "Beauty", ("face moisturizer", "sunscreen", "cleanser", "serum", "lip balm"),
             ("fragrance-free", "vegan", "SPF 50", "hydrating", "anti-aging"), SIZES, "size",
             False, 25.0, 1.1),
    Category("Pet supplies", "Pets", ("dog bed", "cat scratching post", "dog leash", "pet fountain", "cat tree"),
             ("orthopedic", "chew-proof", "washable", "reflective", "self-cleaning"), GEAR_COLOURS, "colour",
             False, 35.0, 0.8),
    Category("Toys & games", "Kids", ("board game", "building blocks", "jigsaw puzzle", "plush toy",
                                      "remote-control car"),
             ("educational", "wooden", "family", "glow-in-the-dark", "STEM"), PLAY_COLOURS, "colour",
             False, 30.0, 0.9),
    Category("Gardening", "Garden", ("pruning shears", "garden hose", "raised bed", "watering can", "plant pot"),
             ("ergonomic", "expandable", "self-watering", "rust-proof", "frost-proof"), GEAR_COLOURS, "colour",
             False, 35.0, 0.7),
)

BRANDS: tuple[Brand, ...] = (
    Brand("Northpeak", 2, ("Running shoes", "Hiking boots", "Jackets", "Backpacks", "Camping")),
    Brand("Trailforge", 1, ("Running shoes", "Hiking boots", "Camping", "Backpacks")),
    Brand("Alpenrose", 3, ("Jackets", "Knitwear", "Hiking boots")),
    Brand("Cascadia", 2, ("Jackets", "Backpacks", "Camping", "Trousers")),
    Brand("Ridgeline", 1, ("Hiking boots", "Backpacks", "Trousers", "Jackets")),
    Brand("Stridewell", 1, ("Running shoes", "Swimwear", "Fitness", "Tops")),
    Brand("Velocita", 2, ("Running shoes", "Cycling", "Smartwatches")),
    Brand("Aquaflux", 1, ("Swimwear", "Smartwatches")),
    Brand("Pedalworks", 1, ("Cycling", "Backpacks")),
    Brand("Corefit", 0, ("Fitness", "Tops", "Trousers", "Swimwear")),
    Brand("Zenflow", 1, ("Fitness", "Tops", "Swimwear")),
    Brand("Loomhouse", 1, ("Tops", "Trousers", "Knitwear")),
    Brand("Everthread", 0, ("Tops", "Trousers", "Knitwear")),
    Brand("Marlowe & Finch", 3, ("Knitwear", "Trousers", "Tops")),
    Brand("Indigo Rail", 1, ("Trousers", "Tops")),
    Brand("Fjordwool", 2, ("Knitwear", "Bedding")),
    Brand("Sonique", 2, ("Headphones",)),
    Brand("Pulsewave", 1, ("Headphones", "Smartwatches", "Phone accessories")),
    Brand("Voltline", 0, ("Phone accessories", "Cycling")),
    Brand("Chronix", 3, ("Smartwatches",)),
    Brand("Brightcell", 0, ("Phone accessories", "Headphones")),
    Brand("Auralis", 3, ("Headphones",)),
    Brand("Kettleworth", 2, ("Coffee", "Cookware")),
    Brand("Ironleaf", 1, ("Cookware", "Gardening")),
    Brand("Crema Nova", 3, ("Coffee",)),
    Brand("Panterra", 0, ("Cookware", "Coffee")),
    Brand("Brewsmith", 1, ("Coffee",)),
    Brand("Lumen & Co", 2, ("Home decor",)),
    Brand("Hearthline", 1, ("Home decor", "Bedding")),
    Brand("Nordhaven", 3, ("Bedding", "Home decor")),
    Brand("Softnest", 0, ("Bedding", "Pet supplies")),
    Brand("Solara", 1, ("Skincare",)),
    Brand("Dermavera", 2, ("Skincare",)),
    Brand("Purebloom", 0, ("Skincare",)),
    Brand("Maison Iris", 3, ("Skincare", "Home decor")),
    Brand("Pawsome", 0, ("Pet supplies",)),
    Brand("Whiskerly", 1, ("Pet supplies",)),
    Brand("Barkside", 2, ("Pet supplies",)),
    Brand("Tinkertown", 1, ("Toys & games",)),
    Brand("Playfield", 0, ("Toys & games",)),
    Brand("Oakbright", 2, ("Toys & games", "Home decor")),
    Brand("Greenthumb", 0, ("Gardening",)),
    Brand("Verdant", 2, ("Gardening",)),
    Brand("Rootwell", 1, ("Gardening", "Pet supplies")),
)


def unique(words) -> tuple[str, ...]:
    """Words in order of first appearance, each once."""
    return tuple(dict.fromkeys(words))


@dataclass(frozen=True)
class Vocabulary:
    """The shop's categories and brands, plus the global word lists each taste is a weight over."""

    categories: tuple[Category, ...]
    """Categories, in code order."""
    brands: tuple[Brand, ...]
    """Brands, in code order."""

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Attribute group -> its words; a product has one word of each group (GROUPS order)."""
        cats = self.categories
        return {
            "category": tuple(c.name for c in cats),
            "type": unique(t for c in cats for t in c.types),
            "tag": unique(t for c in cats for t in c.tags),
            "brand": tuple(b.name for b in self.brands),
            "finish": unique(f for c in cats for f in c.finishes),
            "fit": GENDERS,
            "price_band": PRICE_BANDS,
        }

    def to_json(self) -> dict:
        """A JSON-ready dict; :meth:`from_json` restores it exactly."""
        return {"categories": [asdict(c) for c in self.categories], "brands": [asdict(b) for b in self.brands]}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        """The vocabulary written by :meth:`to_json`."""
        cats = tuple(Category(**{k: tuple(v) if isinstance(v, list) else v for k, v in c.items()})
                     for c in data["categories"])
        brands = tuple(Brand(b["name"], int(b["tier"]), tuple(b["categories"])) for b in data["brands"])
        return cls(cats, brands)


GROUPS: tuple[str, ...] = ("category", "type", "tag", "brand", "finish", "fit", "price_band")
"""Attribute groups in feature order; a product's codes array has one column per group."""

DEFAULT_VOCABULARY = Vocabulary(CATEGORIES, BRANDS)
"""The embedded shop's vocabulary."""
