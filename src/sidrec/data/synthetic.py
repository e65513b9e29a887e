"""The embedded default dataset of sidrec: a seeded, clearly labelled synthetic shop.

Nothing here is real user behaviour. `generate_synthetic(SyntheticConfig(seed=N))` builds a
canonical `Dataset` (format "synthetic", `DatasetInfo.synthetic=True`, a note naming the seed)
whose structure is carried both by the interactions and by the item TEXT, so that sequential
models and semantic IDs built from titles / descriptions both have something to find:

Catalogue
    A hand-written hierarchy department → category → product type (`CATALOGUE`), fictional
    brands per department (`BRANDS`), attribute vocabularies (`ATTRIBUTES`) and model lines per
    price tier (`SERIES`). Each item gets a title from its type's template
    ("Larkspur Nova 6-String Electric Guitar, Sunburst, Maple Neck"), a two-sentence description,
    a brand, categories [department, category, product type] and a price. Popularity is
    Zipf-like within each product type.

Users
    1–3 preferred departments (Dirichlet weights), a favourite brand per department and a brand
    loyalty, a price tier. Sequences are generated step by step, all users at once (numpy):
    - complement (p_complement): an accessory of a recent "primary" item (electric guitar →
      strings, picks, strap, cable…; skillet → scraper, seasoning oil), often of the same brand;
    - continue (p_continue): same product type or a sibling type of the same category;
    - fresh: a new draw from the user's departments (rarely any department: p_explore).
    Timestamps increase per user with mode-dependent gaps; unix seconds within 2024–2025.

The catalogue constants are plain data: extend them by hand; `_catalogue()` checks them.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidrec.data.build import build_dataset
from sidrec.data.dataset import Dataset

# ====================================================================== catalogue data


class ProductType(NamedTuple):
    """One product type of the catalogue (the third level of `categories`)."""

    name: str  # "electric guitar": categories[2], and the noun of the description
    title: str  # "{brand} {series} {strings} Electric Guitar, {finish}, {neck}"; fields: ATTRIBUTES keys
    use: str  # starts with "for …": "for stage, studio and bedroom practice"
    features: tuple[str, ...]  # clauses for the description's second sentence
    complements: tuple[str, ...] = ()  # accessory product types (same department); non-empty = primary
    price: float = 30.0  # typical price (USD) of the standard tier


_T = ProductType

CATALOGUE: dict[str, dict[str, tuple[ProductType, ...]]] = {
    "Musical Instruments": {
        "Guitars": (
            _T("electric guitar", "{brand} {series} {strings} Electric Guitar, {finish}, {neck}",
               "for stage, studio and bedroom practice",
               ("Two humbucking pickups and a five-way switch cover clean to crunch",
                "A slim C-shaped neck and medium-jumbo frets make chords easy",
                "Locking tuners keep it in tune through long sets"),
               ("guitar strings", "guitar picks", "guitar strap", "instrument cable", "clip-on tuner",
                "guitar amplifier", "guitar gig bag"), 480.0),
            _T("acoustic guitar", "{brand} {series} Dreadnought Acoustic Guitar, {top}, {finish}",
               "for songwriting, campfires and open-mic nights",
               ("A solid top gives a warm, resonant tone that opens up with playing",
                "Scalloped bracing adds bass response and projection",
                "A built-in preamp lets you plug straight into a PA"),
               ("guitar strings", "guitar capo", "guitar picks", "clip-on tuner", "guitar gig bag",
                "guitar strap"), 350.0),
            _T("bass guitar", "{brand} {series} {bass_strings} Electric Bass, {finish}, {neck}",
               "for holding down the groove in any band",
               ("A split-coil pickup delivers a punchy, round low end",
                "A lightweight body keeps long rehearsals comfortable"),
               ("bass strings", "guitar strap", "instrument cable", "clip-on tuner", "guitar gig bag"), 520.0),
        ),
        "Guitar Accessories": (
            _T("guitar strings", "{brand} {series} Electric Guitar Strings, {gauge}, {string_alloy}, {pack}",
               "for bright tone and long life on electric and acoustic guitars",
               ("A corrosion-resistant coating keeps them sounding new for longer",
                "Precision-wound cores stay in tune after the first stretch")),
            _T("bass strings", "{brand} {series} Bass Strings, {bass_gauge}, {string_alloy}",
               "for a deep, even low end on 4- and 5-string basses",
               ("Round-wound wraps give growl and clarity",)),
            _T("guitar picks", "{brand} {series} Guitar Picks, {pick_thickness}, {pack}",
               "for strumming and fast lead playing",
               ("A textured grip stops them slipping from sweaty fingers",
                "Durable celluloid gives a classic, warm attack")),
            _T("guitar strap", "{brand} {series} Guitar Strap, {strap_material}, {colour}",
               "for comfortable playing standing up",
               ("A padded 2.5-inch strap spreads the weight of heavy guitars",
                "Adjustable from 40 to 58 inches with reinforced leather ends")),
            _T("guitar capo", "{brand} {series} Guitar Capo, {colour}",
               "for changing key without new chord shapes",
               ("A spring-loaded clamp moves between frets with one hand",)),
            _T("clip-on tuner", "{brand} {series} Clip-On Chromatic Tuner, {colour}",
               "for fast, accurate tuning on guitar, bass and ukulele",
               ("A bright rotating display is readable on a dark stage",
                "Vibration sensing ignores noise from the room")),
            _T("instrument cable", "{brand} {series} Instrument Cable, {cable_length}, {colour}",
               "for connecting guitars and basses to amps and pedals",
               ("Braided shielding keeps hum and handling noise away",
                "Gold-plated jacks resist corrosion")),
            _T("guitar gig bag", "{brand} {series} Padded Guitar Gig Bag, {colour}",
               "for carrying a guitar to rehearsals and gigs",
               ("Fifteen millimetres of foam padding protect against knocks",)),
        ),
        "Amplifiers & Effects": (
            _T("guitar amplifier", "{brand} {series} Guitar Combo Amplifier, {watts}, {colour}",
               "for practice at home and small gigs",
               ("Two channels with built-in reverb go from sparkling clean to saturated drive",
                "A headphone output allows silent late-night practice"),
               ("instrument cable", "effects pedal"), 260.0),
            _T("effects pedal", "{brand} {series} {effect} Guitar Effects Pedal",
               "for shaping your guitar tone on a pedalboard",
               ("True bypass switching keeps the signal clean when off",
                "A rugged metal enclosure survives years of stomping"),
               ("instrument cable",), 110.0),
        ),
        "Keyboards": (
            _T("digital piano", "{brand} {series} {keys} Digital Piano, Weighted Keys, {colour}",
               "for learning and practising piano at home",
               ("Graded hammer action feels like an acoustic piano",
                "Sampled grand piano voices with 128-note polyphony"),
               ("sustain pedal", "keyboard stand", "studio headphones"), 650.0),
            _T("sustain pedal", "{brand} {series} Piano Sustain Pedal, {colour}",
               "for expressive playing on digital pianos and keyboards",
               ("A non-slip rubber base stays put under the foot",)),
            _T("keyboard stand", "{brand} {series} X-Style Keyboard Stand, {colour}",
               "for holding keyboards at a comfortable height",
               ("Five height positions lock with a quick-release lever",)),
            _T("studio headphones", "{brand} {series} Closed-Back Studio Headphones, {colour}",
               "for monitoring, mixing and quiet practice",
               ("50 mm drivers give a flat, detailed response",)),
        ),
    },
    "Kitchen": {
        "Cookware": (
            _T("cast iron skillet", "{brand} {series} Pre-Seasoned Cast Iron Skillet, {pan_size}",
               "for searing, baking and campfire cooking",
               ("Even heat retention gives a deep crust on steaks",
                "Pre-seasoned with vegetable oil and ready to use",
                "Oven safe and at home on induction, gas or open flame"),
               ("skillet scraper", "seasoning oil", "silicone handle cover", "splatter screen"), 45.0),
            _T("nonstick frying pan", "{brand} {series} Nonstick Frying Pan, {pan_size}, {colour}",
               "for eggs, pancakes and delicate fish",
               ("A PFOA-free ceramic coating releases food with little oil",
                "A riveted stay-cool handle"),
               ("silicone spatula", "splatter screen"), 38.0),
            _T("dutch oven", "{brand} {series} Enameled Cast Iron Dutch Oven, {capacity_qt}, {colour}",
               "for braises, stews and crusty bread",
               ("A tight-fitting lid keeps moisture in during long braises",
                "Chip-resistant enamel cleans up easily"),
               ("silicone handle cover", "wooden spoon set", "silicone spatula"), 95.0),
            _T("stockpot", "{brand} {series} Stainless Steel Stockpot with Lid, {capacity_qt}",
               "for soups, stocks and pasta for a crowd",
               ("A tri-ply base spreads heat without hot spots",),
               ("wooden spoon set",), 55.0),
        ),
        "Cookware Care": (
            _T("skillet scraper", "{brand} {series} Pan Scraper, {scraper_material}, {pack}",
               "for cleaning cast iron without stripping the seasoning",
               ("Rounded corners fit the curve of any skillet",)),
            _T("seasoning oil", "{brand} {series} Cast Iron Seasoning Oil, {oil_volume}",
               "for building and maintaining a non-stick seasoning",
               ("A blend of plant oils that polymerises into a hard finish",)),
            _T("silicone handle cover", "{brand} {series} Silicone Hot Handle Holder, {colour}, {pack}",
               "for gripping hot cast iron handles safely",
               ("Heat resistant to 450 °F",)),
            _T("splatter screen", "{brand} {series} Splatter Screen, {pan_size}",
               "for frying without grease on the stovetop",
               ("Fine stainless mesh lets steam escape while stopping oil",)),
        ),
        "Utensils": (
            _T("silicone spatula", "{brand} {series} Silicone Spatula Set, {colour}, {pack}",
               "for scraping bowls and flipping in nonstick pans",
               ("Seamless heads resist heat and never scratch coatings",)),
            _T("wooden spoon set", "{brand} {series} Wooden Spoon Set, {wood}",
               "for stirring sauces and stews",
               ("Hand-finished hardwood that will not scratch enamel",)),
        ),
        "Cutlery": (
            _T("chef's knife", "{brand} {series} Chef's Knife, {knife_length}, {steel}",
               "for chopping, slicing and dicing every day",
               ("A full-tang blade sharpened to 15 degrees per side",
                "An ergonomic handle reduces fatigue during long prep"),
               ("cutting board", "knife sharpener", "magnetic knife strip"), 85.0),
            _T("cutting board", "{brand} {series} End-Grain Cutting Board, {wood}, {board_size}",
               "for knife-friendly chopping and serving",
               ("Juice grooves catch liquid from roasts",)),
            _T("knife sharpener", "{brand} {series} Whetstone Sharpening Kit, {grit}",
               "for restoring a razor edge to kitchen knives",
               ("A non-slip bamboo base and angle guide included",)),
            _T("magnetic knife strip", "{brand} {series} Magnetic Knife Strip, {wood}, {strip_length}",
               "for storing knives safely on the wall",
               ("Strong rare-earth magnets hold heavy cleavers",)),
        ),
    },
    "Camera & Photo": {
        "Cameras": (
            _T("mirrorless camera", "{brand} {series} {sensor} Mirrorless Camera, {megapixels}, Body Only",
               "for travel, portraits and hybrid photo-video work",
               ("In-body stabilisation steadies handheld shots",
                "Fast eye-detection autofocus tracks people and animals",
                "Records 4K video with no crop"),
               ("memory card", "camera battery", "camera bag", "prime lens", "zoom lens", "tripod",
                "lens cleaning kit"), 1400.0),
            _T("action camera", "{brand} {series} Waterproof Action Camera, {video_resolution}",
               "for capturing biking, surfing and skiing",
               ("Waterproof to 33 feet without a housing",
                "Horizon levelling keeps footage straight"),
               ("memory card", "camera battery", "action camera mount kit"), 330.0),
        ),
        "Lenses": (
            _T("prime lens", "{brand} {series} {prime_focal} Prime Lens",
               "for portraits, low light and shallow depth of field",
               ("A fast aperture melts backgrounds into smooth bokeh",),
               ("lens filter", "lens cleaning kit"), 450.0),
            _T("zoom lens", "{brand} {series} {zoom_focal} Zoom Lens",
               "for landscapes, events and travel",
               ("Weather sealing keeps out dust and drizzle",),
               ("lens filter", "lens cleaning kit"), 900.0),
        ),
        "Camera Accessories": (
            _T("memory card", "{brand} {series} SDXC Memory Card, {card_capacity}, {card_speed}",
               "for burst shooting and high-bitrate 4K video",
               ("Read speeds up to 300 MB/s for fast offloads",)),
            _T("camera battery", "{brand} {series} Rechargeable Camera Battery, {battery}",
               "for all-day shooting without running flat",
               ("Overcharge protection and a charge indicator",)),
            _T("camera bag", "{brand} {series} Camera Backpack, {bag_volume}, {colour}",
               "for carrying a body, lenses and a laptop on the move",
               ("Customisable padded dividers and a side access door",)),
            _T("tripod", "{brand} {series} Travel Tripod, {tripod_material}, {tripod_height}",
               "for long exposures, landscapes and self-portraits",
               ("A ball head with Arca-Swiss plate and twist leg locks",)),
            _T("lens filter", "{brand} {series} {filter_kind} Lens Filter, {filter_size}",
               "for controlling glare and light outdoors",
               ("Multi-coated optical glass in a slim brass ring",)),
            _T("lens cleaning kit", "{brand} {series} Lens Cleaning Kit, {pack}",
               "for keeping lenses and sensors free of dust and smudges",
               ("Includes a blower, brush, microfibre cloths and cleaning fluid",)),
            _T("action camera mount kit", "{brand} {series} Action Camera Mount Kit, {pack}",
               "for mounting action cameras on helmets, handlebars and chests",
               ("Includes adhesive mounts, a chest harness and a handlebar clamp",)),
        ),
    },
    "Fitness": {
        "Strength Training": (
            _T("adjustable dumbbells", "{brand} {series} Adjustable Dumbbells, {dumbbell_range}, Pair",
               "for full-body strength training at home",
               ("A dial selects the weight in seconds",
                "Replaces fifteen pairs of dumbbells in one compact set"),
               ("weight bench", "workout gloves", "exercise mat"), 320.0),
            _T("kettlebell", "{brand} {series} Cast Iron Kettlebell, {kettlebell_weight}",
               "for swings, snatches and conditioning",
               ("A wide, smooth handle fits two hands",),
               ("workout gloves", "exercise mat"), 55.0),
            _T("weight bench", "{brand} {series} Adjustable Weight Bench, {colour}",
               "for presses, rows and incline work",
               ("Seven back positions and a 600 lb rating",),
               ("workout gloves",), 180.0),
            _T("resistance bands", "{brand} {series} Resistance Band Set, {resistance}, {pack}",
               "for warm-ups, physio and travel workouts",
               ("Latex-free bands with door anchor and handles",)),
        ),
        "Cardio": (
            _T("exercise bike", "{brand} {series} Indoor Exercise Bike, {colour}",
               "for low-impact cardio at home",
               ("A silent magnetic flywheel with 32 resistance levels",),
               ("exercise mat", "shaker bottle", "bike seat cushion"), 600.0),
            _T("jump rope", "{brand} {series} Speed Jump Rope, {colour}",
               "for conditioning and double-unders",
               ("Ball-bearing handles spin smoothly",)),
            _T("bike seat cushion", "{brand} {series} Gel Bike Seat Cushion, {colour}",
               "for comfortable rides on indoor bikes",
               ("Memory foam with a cooling gel layer",)),
        ),
        "Yoga & Recovery": (
            _T("yoga mat", "{brand} {series} Non-Slip Yoga Mat, {mat_thickness}, {colour}",
               "for yoga, pilates and floor work",
               ("Natural tree rubber grips even when sweaty",
                "Alignment lines help with posture"),
               ("yoga block", "yoga strap", "foam roller"), 60.0),
            _T("yoga block", "{brand} {series} Yoga Block, {block_material}, {pack}",
               "for support and alignment in difficult poses",
               ("Bevelled edges and a firm, lightweight core",)),
            _T("yoga strap", "{brand} {series} Yoga Strap, {colour}",
               "for deepening stretches safely",
               ("A metal D-ring buckle adjusts in a second",)),
            _T("foam roller", "{brand} {series} Foam Roller, {roller_length}, {colour}",
               "for muscle recovery after training",
               ("A textured surface works out knots",)),
            _T("exercise mat", "{brand} {series} Exercise Equipment Mat, {colour}",
               "for protecting floors under weights and machines",
               ("High-density PVC absorbs noise and vibration",)),
        ),
        "Training Accessories": (
            _T("workout gloves", "{brand} {series} Workout Gloves, {glove_size}, {colour}",
               "for a secure grip on bars and dumbbells",
               ("Padded palms prevent calluses",)),
            _T("shaker bottle", "{brand} {series} Protein Shaker Bottle, {bottle_volume}, {colour}",
               "for mixing protein shakes without clumps",
               ("A stainless whisk ball and leak-proof lid",)),
        ),
    },
    "Coffee": {
        "Coffee Makers": (
            _T("espresso machine", "{brand} {series} Espresso Machine, {pump_pressure}, {boiler}, {colour}",
               "for café-style espresso and milk drinks at home",
               ("A PID controller holds brew temperature within a degree",
                "A commercial-style steam wand textures silky microfoam"),
               ("burr grinder", "espresso tamper", "milk frothing pitcher", "descaling solution",
                "whole bean coffee"), 520.0),
            _T("pour-over dripper", "{brand} {series} Pour-Over Coffee Dripper, {dripper_material}, {cup_size}",
               "for clean, bright single-cup brewing",
               ("Spiral ribs let the coffee bloom and drain evenly",),
               ("paper coffee filters", "gooseneck kettle", "whole bean coffee"), 28.0),
            _T("french press", "{brand} {series} French Press, {cup_size}, {colour}",
               "for full-bodied coffee and cold brew",
               ("A four-level filtration system keeps grounds out of the cup",),
               ("burr grinder", "whole bean coffee"), 35.0),
            _T("burr grinder", "{brand} {series} {burr} Coffee Grinder, {grind_settings}, {colour}",
               "for grinding fresh beans from espresso to French press",
               ("Low-speed burrs keep beans cool and flavourful",
                "A static-free grounds bin"),
               ("whole bean coffee", "grinder cleaning tablets"), 150.0),
        ),
        "Coffee Beans": (
            _T("whole bean coffee", "{brand} {series} {origin} Whole Bean Coffee, {roast}, {bag_weight}",
               "for brewing fresh, single-origin coffee",
               ("Roasted in small batches and shipped within 48 hours",
                "Tasting notes of dark chocolate, red fruit and caramel")),
        ),
        "Coffee Accessories": (
            _T("espresso tamper", "{brand} {series} Espresso Tamper, {tamper_size}, {wood}",
               "for an even, level espresso puck",
               ("A calibrated spring gives the same pressure every shot",)),
            _T("milk frothing pitcher", "{brand} {series} Milk Frothing Pitcher, {pitcher_volume}",
               "for steaming milk and pouring latte art",
               ("A sharp spout gives precise pouring",)),
            _T("descaling solution", "{brand} {series} Espresso Machine Descaler, {pack}",
               "for removing limescale from coffee machines",
               ("A biodegradable formula safe for all machines",)),
            _T("paper coffee filters", "{brand} {series} Paper Coffee Filters, {filter_shape}, {filter_count}",
               "for sediment-free pour-over and drip coffee",
               ("Oxygen-bleached paper with no papery taste",)),
            _T("gooseneck kettle", "{brand} {series} Electric Gooseneck Kettle, {kettle_volume}, {colour}",
               "for precise pour-over brewing",
               ("Holds a set temperature to within one degree",)),
            _T("grinder cleaning tablets", "{brand} {series} Grinder Cleaning Tablets, {pack}",
               "for removing coffee oils from burr grinders",
               ("Food-safe, gluten-free grains that absorb oils",)),
        ),
    },
    "Garden": {
        "Garden Tools": (
            _T("pruning shears", "{brand} {series} {blade_type} Pruning Shears, {colour}",
               "for trimming shrubs, roses and small branches",
               ("A hardened steel blade cuts branches up to 3/4 inch",),
               ("garden gloves", "blade sharpener"), 30.0),
            _T("garden hose", "{brand} {series} Expandable Garden Hose, {hose_length}, {colour}",
               "for watering beds, lawns and washing the car",
               ("Kink-free triple-layer latex core",),
               ("hose nozzle", "hose reel"), 45.0),
            _T("hose nozzle", "{brand} {series} Hose Spray Nozzle, {pack}",
               "for watering with ten spray patterns",
               ("A thumb control adjusts the flow",)),
            _T("hose reel", "{brand} {series} Wall-Mounted Hose Reel, {colour}",
               "for tidy hose storage",
               ("A rust-proof steel frame",)),
            _T("garden gloves", "{brand} {series} Garden Gloves, {glove_size}, {pack}",
               "for thorny pruning and digging",
               ("Breathable bamboo backs with nitrile palms",)),
            _T("blade sharpener", "{brand} {series} Garden Blade Sharpener",
               "for keeping pruners and shears sharp",
               ("A diamond-coated file fits in a pocket",)),
        ),
        "Planting": (
            _T("raised garden bed", "{brand} {series} Raised Garden Bed, {bed_size}, {bed_material}",
               "for growing vegetables on patios and in small yards",
               ("Tool-free assembly in under fifteen minutes",),
               ("potting soil", "plant fertilizer", "vegetable seed kit", "garden gloves"), 120.0),
            _T("potting soil", "{brand} {series} Organic Potting Mix, {soil_volume}",
               "for containers, raised beds and seedlings",
               ("Enriched with worm castings and perlite for drainage",)),
            _T("plant fertilizer", "{brand} {series} Plant Fertilizer, {npk}, {fert_weight}",
               "for feeding vegetables, flowers and herbs",
               ("Slow-release granules feed for up to three months",)),
            _T("vegetable seed kit", "{brand} {series} {seed_kind} Seed Kit, {pack}",
               "for starting a kitchen garden from seed",
               ("Non-GMO seeds with a planting guide",)),
        ),
        "Lawn Care": (
            _T("lawn mower", "{brand} {series} {mower_type} Lawn Mower, {deck}",
               "for keeping small and medium lawns tidy",
               ("Single-lever height adjustment with seven positions",),
               ("mower blade", "grass catcher bag"), 380.0),
            _T("mower blade", "{brand} {series} Replacement Mower Blade, {deck}",
               "for a clean cut season after season",
               ("Heat-treated steel, balanced at the factory",)),
            _T("grass catcher bag", "{brand} {series} Grass Catcher Bag, {deck}",
               "for collecting clippings as you mow",
               ("A rigid frame and a dust-blocking top panel",)),
        ),
    },
    "Pet Supplies": {
        "Dogs": (
            _T("dog bed", "{brand} {series} Orthopedic Dog Bed, {pet_size}, {colour}",
               "for dogs that need joint support",
               ("Memory foam with a washable cover",),
               ("dog chew toy", "dog blanket"), 70.0),
            _T("dog leash", "{brand} {series} Dog Leash, {leash_length}, {colour}",
               "for daily walks and training",
               ("Reflective stitching for walks at night",),
               ("dog collar", "poop bag dispenser"), 20.0),
            _T("dog collar", "{brand} {series} Adjustable Dog Collar, {pet_size}, {colour}",
               "for everyday wear and ID tags",
               ("A quick-release buckle and stainless D-ring",)),
            _T("dry dog food", "{brand} {series} Dry Dog Food, {flavour}, {food_weight}",
               "for complete, balanced adult nutrition",
               ("Real meat as the first ingredient",)),
            _T("dog chew toy", "{brand} {series} Durable Dog Chew Toy, {pet_size}",
               "for power chewers",
               ("Natural rubber you can fill with treats",)),
            _T("dog blanket", "{brand} {series} Fleece Dog Blanket, {colour}",
               "for cosy naps on the sofa or in the crate",
               ("Soft, machine-washable fleece",)),
            _T("poop bag dispenser", "{brand} {series} Poop Bag Dispenser with Bags, {pack}",
               "for clean-ups on walks",
               ("Clips to any leash; leak-proof bags",)),
        ),
        "Cats": (
            _T("cat tree", "{brand} {series} Cat Tree Tower, {cat_tree_height}, {colour}",
               "for climbing, scratching and napping",
               ("Sisal-wrapped posts and a plush top perch",),
               ("cat toy set", "cat litter"), 90.0),
            _T("litter box", "{brand} {series} Hooded Litter Box, {colour}",
               "for odour control in small homes",
               ("A carbon filter in the lid traps smells",),
               ("cat litter", "litter scoop", "litter mat"), 40.0),
            _T("cat litter", "{brand} {series} Cat Litter, {litter_kind}, {litter_weight}",
               "for easy scooping and odour control",
               ("Low-dust formula that clumps hard",)),
            _T("litter scoop", "{brand} {series} Litter Scoop, {colour}",
               "for quick, clean scooping",
               ("Deep, sturdy scoop with a sifting grid",)),
            _T("litter mat", "{brand} {series} Litter Trapping Mat, {colour}",
               "for keeping litter off the floor",
               ("A honeycomb design catches scattered litter",)),
            _T("cat toy set", "{brand} {series} Cat Toy Set, {pack}",
               "for indoor play and exercise",
               ("Feather wands, crinkle balls and catnip mice",)),
        ),
        "Aquarium": (
            _T("aquarium tank", "{brand} {series} Glass Aquarium Kit, {tank_size}",
               "for freshwater fish at home",
               ("Includes an LED hood and a starter filter",),
               ("aquarium filter", "fish food", "aquarium heater", "water conditioner"), 140.0),
            _T("aquarium filter", "{brand} {series} Hang-On-Back Aquarium Filter, {tank_size}",
               "for crystal-clear aquarium water",
               ("Three-stage mechanical, chemical and biological filtration",)),
            _T("aquarium heater", "{brand} {series} Submersible Aquarium Heater, {heater_watts}",
               "for stable tropical water temperature",
               ("Shatter-proof quartz with a thermostat dial",)),
            _T("fish food", "{brand} {series} Tropical Fish Flakes, {fish_food_weight}",
               "for daily feeding of community fish",
               ("Added vitamins support colour and immunity",)),
            _T("water conditioner", "{brand} {series} Aquarium Water Conditioner, {oil_volume}",
               "for making tap water safe for fish",
               ("Removes chlorine and detoxifies ammonia instantly",)),
        ),
    },
    "Office": {
        "Office Furniture": (
            _T("office chair", "{brand} {series} Ergonomic Office Chair, {chair_material}, {colour}",
               "for long days at the desk",
               ("Adjustable lumbar support and 4D armrests",
                "A synchro-tilt mechanism with tension control"),
               ("chair mat", "seat cushion", "footrest"), 320.0),
            _T("standing desk", "{brand} {series} Electric Standing Desk, {desk_width}, {colour}",
               "for switching between sitting and standing",
               ("Dual motors raise it from 28 to 48 inches in seconds",),
               ("monitor arm", "anti-fatigue mat", "cable management tray"), 450.0),
            _T("monitor arm", "{brand} {series} {monitor_count} Monitor Arm, {colour}",
               "for freeing desk space and a better screen height",
               ("Gas springs hold monitors from 4 to 20 lb",)),
            _T("chair mat", "{brand} {series} Chair Mat for Hard Floors, {mat_size}",
               "for protecting floors under a rolling chair",
               ("Clear polycarbonate that will not crack or curl",)),
            _T("seat cushion", "{brand} {series} Memory Foam Seat Cushion, {colour}",
               "for comfortable sitting all day",
               ("A coccyx cut-out relieves pressure",)),
            _T("footrest", "{brand} {series} Under-Desk Footrest, {colour}",
               "for better posture while seated",
               ("A rocking surface with adjustable height",)),
            _T("anti-fatigue mat", "{brand} {series} Anti-Fatigue Standing Mat, {colour}",
               "for comfort while standing at a desk",
               ("Bevelled edges and a cushioned core",)),
            _T("cable management tray", "{brand} {series} Under-Desk Cable Tray, {colour}",
               "for hiding power strips and cables",
               ("Clamps on with no drilling",)),
        ),
        "Stationery": (
            _T("notebook", "{brand} {series} Hardcover Notebook, {notebook_size}, {ruling}, {colour}",
               "for journaling, planning and meeting notes",
               ("Thick 100 gsm paper with no bleed-through",),
               ("gel pens", "highlighters"), 18.0),
            _T("gel pens", "{brand} {series} Gel Pens, {pen_point}, {pen_count}",
               "for smooth everyday writing",
               ("Quick-drying ink that does not smear",)),
            _T("highlighters", "{brand} {series} Highlighters, Assorted Colours, {pen_count}",
               "for marking up notes and textbooks",
               ("Chisel tips for broad and fine lines",)),
            _T("label printer", "{brand} {series} Label Printer, {connectivity}",
               "for labelling files, shelves and cables",
               ("Prints crisp labels from a phone app",),
               ("label tape",), 60.0),
            _T("label tape", "{brand} {series} Label Tape, {tape_width}, {colour}, {pack}",
               "for durable, water-resistant labels",
               ("Laminated tape resists fading and smudging",)),
        ),
        "Computer Accessories": (
            _T("wireless keyboard", "{brand} {series} Wireless Keyboard, {layout}, {colour}",
               "for quiet, comfortable typing",
               ("Low-profile scissor keys and a 12-month battery",),
               ("wireless mouse", "wrist rest", "mouse pad"), 60.0),
            _T("wireless mouse", "{brand} {series} Wireless Mouse, {mouse_dpi}, {colour}",
               "for precise everyday pointing",
               ("Silent clicks and an ergonomic contoured shell",)),
            _T("mouse pad", "{brand} {series} Mouse Pad, {mousepad_size}, {colour}",
               "for smooth tracking on any desk",
               ("A stitched edge stops fraying",)),
            _T("wrist rest", "{brand} {series} Memory Foam Wrist Rest, {colour}",
               "for reducing wrist strain while typing",
               ("A non-slip base keeps it in place",)),
        ),
    },
    "Outdoor & Camping": {
        "Tents & Shelter": (
            _T("camping tent", "{brand} {series} {persons} Backpacking Tent, {season}, {colour}",
               "for backpacking trips and weekend camping",
               ("Sets up in five minutes with colour-coded poles",
                "A full-coverage rainfly with taped seams"),
               ("tent footprint", "tent stakes", "sleeping bag", "sleeping pad", "headlamp"), 260.0),
            _T("tent footprint", "{brand} {series} Tent Footprint, {persons}",
               "for protecting a tent floor from rocks and moisture",
               ("Ripstop polyester with corner grommets",)),
            _T("tent stakes", "{brand} {series} Aluminum Tent Stakes, {pack}",
               "for pitching in hard or rocky ground",
               ("Y-beam design holds in wind",)),
        ),
        "Sleeping": (
            _T("sleeping bag", "{brand} {series} Mummy Sleeping Bag, {temp_rating}, {colour}",
               "for cold nights in the backcountry",
               ("Water-resistant down that packs small",),
               ("sleeping pad", "camp pillow"), 180.0),
            _T("sleeping pad", "{brand} {series} Inflatable Sleeping Pad, {r_value}, {colour}",
               "for warm, comfortable sleep on the ground",
               ("Inflates in ten breaths with a one-way valve",)),
            _T("camp pillow", "{brand} {series} Inflatable Camp Pillow, {colour}",
               "for better sleep in a tent",
               ("A brushed-fabric cover and curved shape",)),
        ),
        "Camp Kitchen": (
            _T("camping stove", "{brand} {series} Backpacking Stove, {stove_kind}",
               "for boiling water and cooking at camp",
               ("Boils a litre in under four minutes",),
               ("fuel canister", "camping cookset", "camp mug"), 70.0),
            _T("fuel canister", "{brand} {series} Isobutane Fuel Canister, {fuel_size}",
               "for canister stoves in three-season conditions",
               ("A blend that performs in cold weather",)),
            _T("camping cookset", "{brand} {series} Camping Cookset, {cookset_pieces}, {cookset_material}",
               "for cooking and eating at camp",
               ("Nests together with a stove inside",)),
            _T("camp mug", "{brand} {series} Insulated Camp Mug, {mug_volume}, {colour}",
               "for hot drinks around the fire",
               ("Double-wall steel keeps coffee hot for hours",)),
        ),
        "Hiking": (
            _T("hiking backpack", "{brand} {series} Hiking Backpack, {pack_volume}, {colour}",
               "for day hikes and multi-day treks",
               ("An adjustable torso and a ventilated back panel",),
               ("trekking poles", "hydration reservoir", "headlamp", "water filter", "rain cover"), 160.0),
            _T("trekking poles", "{brand} {series} Trekking Poles, {pole_material}, Pair",
               "for stability on steep and rough trails",
               ("Flick locks adjust the length in seconds",)),
            _T("headlamp", "{brand} {series} Rechargeable Headlamp, {lumens}, {colour}",
               "for camp chores and night hiking",
               ("A red night-vision mode and USB-C charging",)),
            _T("water filter", "{brand} {series} {water_filter_kind} Water Filter",
               "for safe drinking water from streams and lakes",
               ("Removes 99.9999% of bacteria and protozoa",)),
            _T("hydration reservoir", "{brand} {series} Hydration Reservoir, {reservoir_volume}",
               "for hands-free drinking on the trail",
               ("A wide opening makes filling and cleaning easy",)),
            _T("rain cover", "{brand} {series} Backpack Rain Cover, {pack_volume}, {colour}",
               "for keeping gear dry in downpours",
               ("Waterproof coated nylon with an elastic edge",)),
        ),
    },
    "Beauty & Skincare": {
        "Skincare": (
            _T("facial cleanser", "{brand} {series} Gentle Facial Cleanser, {skin_type}, {volume_floz}",
               "for a daily clean without tightness",
               ("A pH-balanced, fragrance-free formula",),
               ("moisturizer", "face serum", "sunscreen", "toner"), 16.0),
            _T("moisturizer", "{brand} {series} {ingredient} Moisturizer, {skin_type}, {volume_floz}",
               "for all-day hydration",
               ("A lightweight cream that absorbs fast",),
               ("sunscreen", "face serum"), 28.0),
            _T("face serum", "{brand} {series} {ingredient} Face Serum, {volume_floz}",
               "for brighter, smoother-looking skin",
               ("A concentrated formula in a dropper bottle",)),
            _T("sunscreen", "{brand} {series} Mineral Sunscreen, {spf}, {volume_floz}",
               "for daily broad-spectrum protection",
               ("Zinc oxide with no white cast",)),
            _T("toner", "{brand} {series} Hydrating Toner, {skin_type}, {volume_floz}",
               "for prepping skin after cleansing",
               ("Alcohol-free with soothing botanicals",)),
        ),
        "Hair Care": (
            _T("hair dryer", "{brand} {series} Ionic Hair Dryer, {hair_watts}, {colour}",
               "for fast, frizz-free drying",
               ("Three heat settings and a cool-shot button",),
               ("heat protectant spray", "round brush", "diffuser attachment"), 90.0),
            _T("flat iron", "{brand} {series} Hair Straightener, {plate}, {colour}",
               "for sleek straightening and waves",
               ("Heats to 450 °F in thirty seconds",),
               ("heat protectant spray", "round brush"), 80.0),
            _T("heat protectant spray", "{brand} {series} Heat Protectant Spray, {volume_floz}",
               "for protecting hair from styling heat",
               ("Shields up to 450 °F and tames frizz",)),
            _T("round brush", "{brand} {series} Ceramic Round Brush, {brush_size}",
               "for smooth blow-outs with volume",
               ("A vented ceramic barrel speeds drying",)),
            _T("diffuser attachment", "{brand} {series} Hair Dryer Diffuser, {colour}",
               "for defining curls while drying",
               ("A universal fit for most dryers",)),
        ),
        "Beauty Tools": (
            _T("facial cleansing brush", "{brand} {series} Sonic Facial Cleansing Brush, {colour}",
               "for a deeper clean than hands alone",
               ("Soft silicone bristles and three speeds",),
               ("replacement brush heads", "facial cleanser"), 60.0),
            _T("replacement brush heads", "{brand} {series} Replacement Brush Heads, {pack}",
               "for keeping a cleansing brush hygienic",
               ("Replace every three months",)),
        ),
    },
    "Cycling": {
        "Bikes": (
            _T("road bike", "{brand} {series} Road Bike, {frame}, {groupset}, {frame_size}",
               "for fast group rides and long road miles",
               ("An endurance geometry with clearance for 32 mm tyres",
                "Hydraulic disc brakes stop confidently in the wet"),
               ("bike helmet", "bike lights", "floor pump", "bike tire", "inner tube", "bottle cage",
                "cycling gloves", "bike lock"), 1600.0),
            _T("mountain bike", "{brand} {series} Hardtail Mountain Bike, {wheel}, {frame}, Size {glove_size}",
               "for singletrack, trail centres and rough fire roads",
               ("A 120 mm air fork soaks up roots and rocks",),
               ("bike helmet", "inner tube", "floor pump", "chain lube", "cycling gloves",
                "bike lights"), 1200.0),
        ),
        "Components": (
            _T("bike tire", "{brand} {series} Bike Tire, {tire_size}, {tire_kind}",
               "for grip and puncture resistance on every ride",
               ("A puncture-protection belt under the tread",)),
            _T("inner tube", "{brand} {series} Bike Inner Tube, {tire_size}, {valve}, {pack}",
               "for quick flat fixes at home or on the road",
               ("Butyl rubber with a removable valve core",)),
            _T("chain lube", "{brand} {series} Bike Chain Lube, {lube_kind}, {oil_volume}",
               "for a quiet, efficient drivetrain",
               ("Repels dirt and lasts for hundreds of miles",)),
        ),
        "Cycling Accessories": (
            _T("bike helmet", "{brand} {series} Bike Helmet, {glove_size}, {colour}",
               "for safer riding on road and trail",
               ("A rotational-impact liner and 18 vents",)),
            _T("bike lights", "{brand} {series} Bike Light Set, {lumens}",
               "for seeing and being seen after dark",
               ("USB-C rechargeable front and rear lights",)),
            _T("bike lock", "{brand} {series} {lock_kind}, {colour}",
               "for locking up in the city",
               ("Hardened steel resists bolt cutters",)),
            _T("floor pump", "{brand} {series} Floor Pump with Gauge, {colour}",
               "for fast, accurate inflation at home",
               ("A dual head fits Presta and Schrader valves",)),
            _T("bottle cage", "{brand} {series} Water Bottle Cage, {cage_material}, {colour}",
               "for carrying water on the bike",
               ("Holds bottles securely on rough roads",)),
            _T("cycling gloves", "{brand} {series} Cycling Gloves, {glove_size}, {colour}",
               "for comfort and grip on long rides",
               ("Gel padding reduces hand numbness",)),
        ),
    },
    "Gaming": {
        "Consoles": (
            _T("handheld gaming console", "{brand} {series} Handheld Gaming Console, {storage}, {colour}",
               "for playing PC and indie games anywhere",
               ("A 7-inch 120 Hz screen and a battery that lasts an evening",),
               ("console carrying case", "screen protector", "microSD card", "gaming controller"), 450.0),
            _T("console carrying case", "{brand} {series} Console Carrying Case, {colour}",
               "for protecting a handheld console on the go",
               ("A hard shell with game card slots",)),
            _T("screen protector", "{brand} {series} Tempered Glass Screen Protector, {pack}",
               "for guarding screens against scratches",
               ("9H hardness with an alignment frame",)),
            _T("microSD card", "{brand} {series} microSDXC Card, {card_capacity}",
               "for expanding console and phone storage",
               ("A2-rated for fast game loading",)),
        ),
        "PC Peripherals": (
            _T("gaming mouse", "{brand} {series} Gaming Mouse, {mouse_weight}, {connectivity}, {colour}",
               "for competitive shooters and fast aiming",
               ("A 26K-DPI optical sensor with zero smoothing",),
               ("gaming mouse pad", "mouse grip tape"), 80.0),
            _T("mechanical keyboard", "{brand} {series} Mechanical Gaming Keyboard, {layout}, {switch}",
               "for gaming and satisfying typing",
               ("Hot-swappable switches and per-key RGB",),
               ("keycap set", "gaming wrist rest", "gaming mouse pad"), 130.0),
            _T("gaming headset", "{brand} {series} Gaming Headset, {connectivity}, {colour}",
               "for immersive sound and clear team chat",
               ("A detachable noise-cancelling microphone",),
               ("headset stand",), 110.0),
            _T("gaming controller", "{brand} {series} Wireless Gaming Controller, {colour}",
               "for PC and console gaming",
               ("Hall-effect sticks that never drift",),
               ("controller charging dock",), 60.0),
        ),
        "Gaming Accessories": (
            _T("gaming mouse pad", "{brand} {series} Gaming Mouse Pad, {mousepad_size}, {colour}",
               "for consistent glide and control",
               ("A micro-woven cloth surface",)),
            _T("mouse grip tape", "{brand} {series} Mouse Grip Tape, {pack}",
               "for a secure grip during long sessions",
               ("Pre-cut, textured and residue-free",)),
            _T("keycap set", "{brand} {series} PBT Keycap Set, {keycap_profile}, {colour}",
               "for customising a mechanical keyboard",
               ("Double-shot legends that never fade",)),
            _T("gaming wrist rest", "{brand} {series} Gaming Wrist Rest, {layout}, {colour}",
               "for comfort during long gaming sessions",
               ("Cooling-gel memory foam with a non-slip base",)),
            _T("headset stand", "{brand} {series} Headset Stand, {colour}",
               "for keeping a headset tidy on the desk",
               ("A weighted base with a USB hub",)),
            _T("controller charging dock", "{brand} {series} Controller Charging Dock, {colour}",
               "for keeping two controllers charged",
               ("Magnetic connectors and LED charge indicators",)),
        ),
    },
}

BRANDS: dict[str, tuple[str, ...]] = {
    "Musical Instruments": ("Larkspur", "Halden & Rowe", "Cobaltone", "Marrow Bay", "Vesper", "Ironoak"),
    "Kitchen": ("Hearthwell", "Copperfield", "Saltmarsh", "Brannock", "Olvera", "Kettleby"),
    "Camera & Photo": ("Lumora", "Kestrel Optics", "Fieldglass", "Aperion", "Northlight", "Vantora"),
    "Fitness": ("Ironvale", "Pulsefield", "Corebound", "Stridewell", "Tallgrass Athletic", "Vigora"),
    "Coffee": ("Bramble & Bean", "Crema Norte", "Hollow Oak Roasters", "Tamperly", "Ristora", "Drift Coffee Co."),
    "Garden": ("Greenfurrow", "Mossbank", "Thornley", "Verdanta", "Oakhollow", "Rootwise"),
    "Pet Supplies": ("Pawsome Co.", "Barkwell", "Whiskerfield", "Tailwind Pet", "Furnest", "Snoutly"),
    "Office": ("Deskwright", "Paperlane", "Ergonova", "Quillby", "Stackwell", "Brightdesk"),
    "Outdoor & Camping": ("Ridgeline", "Cairnworks", "Timberjay", "Summit Fox", "Alpenlite", "Wildmere"),
    "Beauty & Skincare": ("Lunessa", "Dewbloom", "Clarelle", "Verity Skin", "Solenne", "Petalcraft"),
    "Cycling": ("Velonor", "Crankworth", "Spokeline", "Gravelle", "Tarmac & Pine", "Chainstay"),
    "Gaming": ("Nexfire", "Pixelforge", "Voltkey", "Hexbyte", "Razorfin", "Arcwave"),
}

# Model lines by price tier (0 budget, 1 standard, 2 premium): the tier shows in the title.
SERIES: tuple[tuple[str, ...], ...] = (
    ("Go", "Lite", "Basics", "Start", "Core", "Essential", "One"),
    ("Nova", "Ridge", "Atlas", "Vista", "Tempo", "Arc", "Trail", "Echo", "Metro", "Field"),
    ("Pro", "Elite", "Signature", "Reserve", "Apex", "Studio", "Summit"),
)
TIER_NAMES = ("budget", "standard", "premium")
TIER_ADJECTIVES: tuple[tuple[str, ...], ...] = (
    ("budget-friendly", "entry-level", "no-frills", "great-value"),
    ("versatile", "well-made", "dependable", "everyday"),
    ("premium", "professional-grade", "flagship", "top-of-the-line"),
)
TIER_PRICE_FACTOR = (0.55, 1.0, 2.1)

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "colour": ("Black", "White", "Graphite", "Navy", "Forest Green", "Crimson", "Sand", "Slate Grey",
               "Teal", "Burgundy", "Olive", "Sky Blue"),
    "pack": ("2-Pack", "3-Pack", "6-Pack", "12-Pack", "24-Pack"),
    "glove_size": ("S", "M", "L", "XL"),
    "connectivity": ("Wired", "Wireless", "Bluetooth", "Tri-Mode Wireless"),
    "oil_volume": ("4 fl oz", "8 fl oz", "16 fl oz"),
    "wood": ("Walnut", "Maple", "Acacia", "Bamboo", "Teak", "Cherry"),
    "lumens": ("300 Lumens", "450 Lumens", "750 Lumens", "1200 Lumens"),
    "card_capacity": ("64 GB", "128 GB", "256 GB", "512 GB", "1 TB"),
    "layout": ("Full-Size", "Tenkeyless", "75%", "65%"),
    "mousepad_size": ("Medium", "Large", "XL", "XXL Desk Mat"),
    # musical instruments
    "strings": ("6-String", "7-String", "12-String"),
    "bass_strings": ("4-String", "5-String"),
    "finish": ("Sunburst", "Cherry Red", "Natural", "Gloss Black", "Olympic White", "Seafoam Green",
               "Tobacco Burst"),
    "neck": ("Maple Neck", "Rosewood Fingerboard", "Mahogany Neck", "Ebony Fingerboard", "Roasted Maple Neck"),
    "top": ("Solid Spruce Top", "Solid Cedar Top", "Mahogany Top", "Koa Top"),
    "gauge": ("Extra Light 9-42", "Light 10-46", "Medium 11-49", "Heavy 12-52"),
    "bass_gauge": ("Light 40-95", "Medium 45-105", "Heavy 50-110"),
    "string_alloy": ("Nickel Wound", "Pure Nickel", "Stainless Steel", "Coated"),
    "pick_thickness": ("0.46 mm", "0.60 mm", "0.73 mm", "0.88 mm", "1.0 mm"),
    "strap_material": ("Leather", "Cotton", "Nylon", "Suede", "Vegan Leather"),
    "cable_length": ("3 ft", "10 ft", "15 ft", "20 ft"),
    "watts": ("10 W", "20 W", "40 W", "60 W", "100 W"),
    "effect": ("Overdrive", "Distortion", "Delay", "Reverb", "Chorus", "Fuzz"),
    "keys": ("61-Key", "76-Key", "88-Key"),
    # kitchen
    "pan_size": ("8-Inch", "10-Inch", "12-Inch", "15-Inch"),
    "capacity_qt": ("2-Quart", "4-Quart", "5.5-Quart", "7-Quart", "8-Quart", "12-Quart"),
    "knife_length": ("6-Inch", "8-Inch", "10-Inch"),
    "steel": ("German Stainless Steel", "VG-10 Steel", "Damascus Steel", "High-Carbon Steel"),
    "grit": ("400/1000 Grit", "1000/6000 Grit", "3000/8000 Grit"),
    "scraper_material": ("Polycarbonate", "Chainmail", "Silicone"),
    "board_size": ("12 x 9 Inch", "16 x 12 Inch", "20 x 15 Inch"),
    "strip_length": ("12-Inch", "16-Inch", "24-Inch"),
    # camera
    "sensor": ("Full-Frame", "APS-C", "Micro Four Thirds"),
    "megapixels": ("24 MP", "26 MP", "33 MP", "45 MP", "61 MP"),
    "video_resolution": ("4K60", "5.3K", "4K30", "8K"),
    "prime_focal": ("24mm f/1.8", "35mm f/1.4", "50mm f/1.8", "85mm f/1.8", "50mm f/1.2"),
    "zoom_focal": ("16-35mm f/4", "24-70mm f/2.8", "70-200mm f/4", "18-135mm f/3.5-5.6", "100-400mm f/5.6"),
    "card_speed": ("V30", "V60", "V90"),
    "battery": ("1600 mAh", "2000 mAh", "2280 mAh", "Dual Pack"),
    "bag_volume": ("10 L", "16 L", "22 L", "30 L"),
    "tripod_material": ("Aluminum", "Carbon Fiber"),
    "tripod_height": ("55-Inch", "62-Inch", "72-Inch"),
    "filter_kind": ("UV", "Circular Polarizer", "ND8", "Variable ND"),
    "filter_size": ("52mm", "58mm", "67mm", "77mm", "82mm"),
    # fitness
    "dumbbell_range": ("5-25 lb", "5-52.5 lb", "10-90 lb"),
    "kettlebell_weight": ("15 lb", "20 lb", "25 lb", "35 lb", "45 lb", "53 lb"),
    "resistance": ("Light", "Medium", "Heavy", "Mixed Levels"),
    "mat_thickness": ("4 mm", "6 mm", "8 mm"),
    "block_material": ("Cork", "EVA Foam", "Bamboo"),
    "roller_length": ("12-Inch", "18-Inch", "36-Inch"),
    "bottle_volume": ("20 oz", "24 oz", "28 oz", "32 oz"),
    # coffee
    "pump_pressure": ("9-Bar", "15-Bar", "20-Bar"),
    "boiler": ("Single Boiler", "Dual Boiler", "Thermoblock", "Heat Exchanger"),
    "dripper_material": ("Ceramic", "Glass", "Stainless Steel", "Copper"),
    "cup_size": ("1-Cup", "2-Cup", "4-Cup", "8-Cup"),
    "burr": ("Conical Burr", "Flat Burr"),
    "grind_settings": ("16 Settings", "31 Settings", "40 Settings", "Stepless"),
    "origin": ("Ethiopia Yirgacheffe", "Colombia Huila", "Guatemala Antigua", "Sumatra Mandheling",
               "Kenya AA", "Brazil Cerrado", "House Blend"),
    "roast": ("Light Roast", "Medium Roast", "Dark Roast", "Espresso Roast"),
    "bag_weight": ("12 oz", "1 lb", "2 lb", "5 lb"),
    "tamper_size": ("51mm", "53mm", "58mm"),
    "pitcher_volume": ("12 oz", "20 oz", "32 oz"),
    "filter_shape": ("#2 Cone", "#4 Cone", "Basket", "Size 02"),
    "filter_count": ("100-Count", "200-Count", "300-Count"),
    "kettle_volume": ("0.6 L", "0.9 L", "1.2 L"),
    # garden
    "blade_type": ("Bypass", "Anvil", "Ratchet"),
    "hose_length": ("25 ft", "50 ft", "75 ft", "100 ft"),
    "bed_size": ("4 x 2 ft", "4 x 4 ft", "8 x 4 ft"),
    "bed_material": ("Cedar", "Galvanized Steel", "Fabric"),
    "soil_volume": ("8 qt", "16 qt", "1.5 cu ft", "2 cu ft"),
    "npk": ("10-10-10", "4-4-4", "24-8-16", "3-4-4"),
    "fert_weight": ("2 lb", "4 lb", "8 lb"),
    "seed_kind": ("Heirloom Tomato", "Herb Garden", "Salad Greens", "Pepper", "Pollinator Flower"),
    "mower_type": ("Cordless Electric", "Gas", "Reel", "Corded Electric"),
    "deck": ("16-Inch", "19-Inch", "21-Inch"),
    # pets
    "pet_size": ("Small", "Medium", "Large", "X-Large"),
    "leash_length": ("4 ft", "6 ft", "10 ft", "16 ft Retractable"),
    "flavour": ("Chicken & Rice", "Salmon & Sweet Potato", "Lamb & Brown Rice", "Turkey & Oatmeal",
                "Grain-Free Beef"),
    "food_weight": ("4 lb", "15 lb", "30 lb"),
    "cat_tree_height": ("34-Inch", "52-Inch", "68-Inch"),
    "litter_kind": ("Clumping Clay", "Pine Pellet", "Silica Crystal", "Wheat"),
    "litter_weight": ("10 lb", "20 lb", "40 lb"),
    "tank_size": ("10 Gallon", "20 Gallon", "29 Gallon", "55 Gallon"),
    "heater_watts": ("50 W", "100 W", "200 W"),
    "fish_food_weight": ("1 oz", "2.2 oz", "7 oz"),
    # office
    "chair_material": ("Mesh", "Bonded Leather", "Fabric"),
    "desk_width": ("48-Inch", "55-Inch", "63-Inch", "72-Inch"),
    "monitor_count": ("Single", "Dual", "Triple"),
    "mat_size": ("36 x 48 Inch", "45 x 53 Inch", "48 x 60 Inch"),
    "notebook_size": ("A5", "B5", "A4", "Pocket"),
    "ruling": ("Dotted", "Lined", "Grid", "Blank"),
    "pen_point": ("0.38 mm", "0.5 mm", "0.7 mm"),
    "pen_count": ("10-Pack", "20-Pack", "36-Pack"),
    "tape_width": ("12 mm", "18 mm", "24 mm"),
    "mouse_dpi": ("1600 DPI", "4000 DPI", "8000 DPI"),
    # outdoor
    "persons": ("1-Person", "2-Person", "3-Person", "4-Person", "6-Person"),
    "season": ("3-Season", "4-Season"),
    "temp_rating": ("15°F", "20°F", "30°F", "40°F"),
    "r_value": ("R-Value 2.5", "R-Value 4.2", "R-Value 6.9"),
    "stove_kind": ("Canister", "Integrated System", "Multi-Fuel"),
    "fuel_size": ("100 g", "230 g", "450 g"),
    "cookset_pieces": ("2-Piece", "4-Piece", "8-Piece"),
    "cookset_material": ("Titanium", "Hard-Anodized Aluminum", "Stainless Steel"),
    "mug_volume": ("10 oz", "12 oz", "16 oz"),
    "pack_volume": ("28 L", "35 L", "45 L", "55 L", "65 L"),
    "pole_material": ("Aluminum", "Carbon Fiber"),
    "water_filter_kind": ("Squeeze", "Pump", "Gravity", "Straw"),
    "reservoir_volume": ("1.5 L", "2 L", "3 L"),
    # beauty
    "skin_type": ("for Dry Skin", "for Oily Skin", "for Sensitive Skin", "for All Skin Types"),
    "volume_floz": ("1 fl oz", "1.7 fl oz", "5 fl oz", "8 fl oz"),
    "ingredient": ("Hyaluronic Acid", "Niacinamide", "Vitamin C", "Retinol", "Ceramide", "Peptide"),
    "spf": ("SPF 30", "SPF 50"),
    "hair_watts": ("1600 W", "1875 W", "2000 W"),
    "plate": ("1-Inch Ceramic", "1-Inch Titanium", "1.5-Inch Ceramic"),
    "brush_size": ("1.5-Inch", "2-Inch", "2.5-Inch"),
    # cycling
    "frame": ("Aluminum", "Carbon", "Steel", "Titanium"),
    "groupset": ("2x11-Speed", "2x12-Speed", "1x12-Speed", "1x11-Speed"),
    "frame_size": ("50 cm", "54 cm", "56 cm", "58 cm"),
    "wheel": ("27.5-Inch", "29-Inch"),
    "tire_size": ("700x25c", "700x28c", "700x32c", "29x2.4", "27.5x2.25"),
    "tire_kind": ("Tubeless Ready", "Clincher", "Folding Bead"),
    "valve": ("Presta", "Schrader"),
    "lube_kind": ("Wet", "Dry", "Wax"),
    "lock_kind": ("U-Lock", "Folding Lock", "Chain Lock", "Cable Lock"),
    "cage_material": ("Aluminum", "Carbon", "Nylon"),
    # gaming
    "storage": ("256 GB", "512 GB", "1 TB", "2 TB"),
    "mouse_weight": ("Ultralight 58 g", "63 g", "80 g", "95 g"),
    "switch": ("Red Linear", "Brown Tactile", "Blue Clicky", "Silent Linear"),
    "keycap_profile": ("Cherry Profile", "OEM Profile", "XDA Profile", "SA Profile"),
}

INTRO_TEMPLATES = (
    "The {brand} {series} {noun} is a {tier_adj} choice {use}.",
    "A {tier_adj} {noun} from {brand}, made {use}.",
    "{brand} designed the {series} {noun} {use}.",
    "This {tier_adj} {brand} {noun} is built {use}.",
)
DETAIL_TEMPLATE = "{feature} ({specs})."

START_TIME = 1704067200  # 2024-01-01T00:00:00Z
END_TIME = 1767225599  # 2025-12-31T23:59:59Z
GAP_MEDIAN_SECONDS = {"complement": 1.5 * 86400, "continue": 6 * 86400, "fresh": 18 * 86400}
MAX_GAP_SECONDS = 120 * 86400
MIN_GAP_SECONDS = 600

MODE_FRESH, MODE_CONTINUE, MODE_COMPLEMENT = 0, 1, 2


# ====================================================================== configuration


class SyntheticConfig(BaseModel):
    """Sizes and knobs of the synthetic generator (every field has a sensible default)."""

    model_config = ConfigDict(extra="forbid")

    n_items: int = Field(2000, ge=1, description="catalogue size")
    n_users: int = Field(3000, ge=1, description="number of users (each gives one sequence)")
    mean_length: float = Field(12.0, gt=0, description="mean sequence length")
    min_length: int = Field(5, ge=3, description="shortest sequence (≥ 3 for leave-one-out)")
    max_length: int = Field(50, ge=3, description="longest sequence")
    seed: int = Field(0, description="all randomness derives from this seed")
    max_history: int = Field(20, ge=1, description="history length kept in the split examples")
    p_complement: float = Field(0.5, ge=0, le=1, description="next item is an accessory of a recent primary item")
    p_continue: float = Field(0.25, ge=0, le=1, description="next item stays in the last item's category")
    p_same_type: float = Field(0.3, ge=0, le=1, description="within 'continue': same product type, else a sibling")
    p_explore: float = Field(0.05, ge=0, le=1, description="a fresh draw ignores the user's departments")
    p_same_brand: float = Field(0.65, ge=0, le=1, description="an accessory has the brand of its primary item")
    p_tier_match: float = Field(0.7, ge=0, le=1, description="an item is drawn from the user's price tier")
    complement_window: int = Field(4, ge=1, description="how many steps a primary item keeps drawing accessories")
    zipf_exponent: float = Field(1.0, ge=0, description="item popularity ∝ 1/rank^a within a product type")
    primary_boost: float = Field(3.0, gt=0, description="fresh draws favour primary product types by this factor")
    dirichlet_alpha: float = Field(1.0, gt=0, description="concentration of users' department weights")
    max_departments: int = Field(3, ge=1, description="most preferred departments per user (1 … this)")
    repeat_window: int = Field(10, ge=0, description="redraw an item bought within this many steps")

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        """Mode probabilities must leave room for each other; lengths must be ordered."""
        if self.p_complement + self.p_continue > 1:
            raise ValueError("p_complement + p_continue must be ≤ 1")
        if not self.min_length <= self.mean_length <= self.max_length:
            raise ValueError("need min_length ≤ mean_length ≤ max_length")
        return self


# ====================================================================== flattened catalogue


@dataclass(frozen=True)
class _Catalogue:
    """The catalogue constants as arrays (one row per product type), checked once."""

    types: tuple[ProductType, ...]
    departments: tuple[str, ...]
    categories: tuple[str, ...]  # "department > category"
    category_names: tuple[str, ...]  # "category"
    type_dept: np.ndarray  # int [T]
    type_cat: np.ndarray  # int [T]
    type_fields: tuple[tuple[str, ...], ...]  # attribute fields of each title template
    complements: list[np.ndarray]  # type ids, per type (empty = not a primary type)
    brands: tuple[str, ...]  # all brands, department by department
    brand_dept: np.ndarray  # int [B]

    @property
    def n_types(self) -> int:
        """Number of product types."""
        return len(self.types)


@lru_cache(maxsize=1)
def _catalogue() -> _Catalogue:
    """Flatten and check CATALOGUE / BRANDS / ATTRIBUTES (raises ValueError on a broken table)."""
    types: list[ProductType] = []
    type_dept: list[int] = []
    type_cat: list[int] = []
    categories: list[str] = []
    category_names: list[str] = []
    departments = tuple(CATALOGUE)
    for d, (dept, cats) in enumerate(CATALOGUE.items()):
        for cat, ptypes in cats.items():
            categories.append(f"{dept} > {cat}")
            category_names.append(cat)
            for pt in ptypes:
                types.append(pt)
                type_dept.append(d)
                type_cat.append(len(categories) - 1)
    index = {pt.name: i for i, pt in enumerate(types)}
    if len(index) != len(types):
        raise ValueError("CATALOGUE: product type names must be unique")
    fields = tuple(_template_fields(pt) for pt in types)
    complements = []
    for i, pt in enumerate(types):
        missing = [c for c in pt.complements if c not in index]
        if missing:
            raise ValueError(f"CATALOGUE: '{pt.name}' lists unknown complements {missing}")
        complements.append(np.array([index[c] for c in pt.complements], dtype=np.int64))
        other = [c for c in pt.complements if type_dept[index[c]] != type_dept[i]]
        if other:
            raise ValueError(f"CATALOGUE: complements of '{pt.name}' must be in its department: {other}")
        if not pt.use.startswith("for "):
            raise ValueError(f"CATALOGUE: the use of '{pt.name}' must start with 'for '")
    brands = [b for dept in departments for b in BRANDS[dept]]
    brand_dept = [d for d, dept in enumerate(departments) for _ in BRANDS[dept]]
    return _Catalogue(
        types=tuple(types),
        departments=departments,
        categories=tuple(categories),
        category_names=tuple(category_names),
        type_dept=np.array(type_dept, dtype=np.int64),
        type_cat=np.array(type_cat, dtype=np.int64),
        type_fields=fields,
        complements=complements,
        brands=tuple(brands),
        brand_dept=np.array(brand_dept, dtype=np.int64),
    )


def _template_fields(pt: ProductType) -> tuple[str, ...]:
    """Attribute fields of a title template (brand and series are filled separately)."""
    names = [f for _, f, _, _ in string.Formatter().parse(pt.title) if f]
    attrs = tuple(f for f in names if f not in ("brand", "series"))
    unknown = [f for f in attrs if f not in ATTRIBUTES]
    if unknown:
        raise ValueError(f"CATALOGUE: the title of '{pt.name}' uses unknown attributes {unknown}")
    return attrs


# ====================================================================== weighted group sampling


@dataclass(frozen=True)
class _GroupSampler:
    """Draw one member of a group, with fixed weights, for many group ids at once (vectorised).

    Members are sorted by group; `cum` is the running sum of their weights, so a draw is one
    `searchsorted` between the group's bounds.
    """

    members: np.ndarray  # member ids sorted by group
    cum: np.ndarray  # cumulative weights in that order
    lo: np.ndarray  # first position of each group
    hi: np.ndarray  # one past the last position of each group

    @classmethod
    def build(
        cls, groups: np.ndarray, weights: np.ndarray, n_groups: int, members: np.ndarray | None = None
    ) -> _GroupSampler:
        """Members (default 0 … n-1) with their group ids and positive weights."""
        order = np.argsort(groups, kind="stable")
        counts = np.bincount(groups, minlength=n_groups)
        hi = np.cumsum(counts)
        ids = order if members is None else np.asarray(members)[order]
        return cls(members=ids, cum=np.cumsum(weights[order], dtype=np.float64), lo=hi - counts, hi=hi)

    def size(self, g: np.ndarray) -> np.ndarray:
        """Number of members of each group in `g`."""
        return self.hi[g] - self.lo[g]

    def sample(self, g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One member per entry of `g` (every group in `g` must be non-empty)."""
        lo, hi = self.lo[g], self.hi[g]
        base = np.where(lo > 0, self.cum[np.maximum(lo - 1, 0)], 0.0)
        top = self.cum[hi - 1]
        pos = np.searchsorted(self.cum, base + rng.random(len(g)) * (top - base), side="right")
        return self.members[np.clip(pos, lo, hi - 1)]


# ====================================================================== items


@dataclass(frozen=True)
class _Items:
    """Latent item attributes used by the behaviour model, plus the public items table."""

    table: pd.DataFrame
    ptype: np.ndarray  # product type id [N]
    brand: np.ndarray  # global brand id [N]
    tier: np.ndarray  # 0 budget, 1 standard, 2 premium [N]
    weight: np.ndarray  # popularity weight (Zipf within product type) [N]


def _assign_types(n_items: int, cat: _Catalogue, rng: np.random.Generator) -> np.ndarray:
    """Product type of every item: each type at least once when there is room, shuffled."""
    share = rng.lognormal(0.0, 0.35, cat.n_types)
    share /= share.sum()
    if n_items < cat.n_types:
        return rng.choice(cat.n_types, size=n_items, replace=False, p=share)
    rest = rng.choice(cat.n_types, size=n_items - cat.n_types, p=share)
    return rng.permutation(np.concatenate([np.arange(cat.n_types), rest]))


def _brand_sampler(cat: _Catalogue, rng: np.random.Generator) -> _GroupSampler:
    """Zipf-ish brand shares within each department (shared by items and users' favourites)."""
    rank = np.concatenate([rng.permutation(len(BRANDS[d])) for d in cat.departments])
    return _GroupSampler.build(cat.brand_dept, 1.0 / (rank + 1.0) ** 0.7, len(cat.departments))


def _zipf_weights(groups: np.ndarray, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """1/rank^a with a random rank of each member inside its group."""
    order = np.lexsort((rng.random(len(groups)), groups))
    sorted_groups = groups[order]
    starts = np.searchsorted(sorted_groups, sorted_groups, side="left")
    rank = np.empty(len(groups), dtype=np.float64)
    rank[order] = np.arange(len(groups)) - starts
    return 1.0 / (rank + 1.0) ** exponent


def _make_items(
    config: SyntheticConfig, cat: _Catalogue, brands: _GroupSampler, rng: np.random.Generator
) -> _Items:
    """Latent attributes (type, brand, tier, popularity) and the text of every item."""
    n = config.n_items
    ptype = _assign_types(n, cat, rng)
    brand = brands.sample(cat.type_dept[ptype], rng)
    brand_tier = rng.integers(0, 3, len(cat.brands))  # each brand's usual price tier
    tier = np.where(rng.random(n) < 0.6, brand_tier[brand], rng.integers(0, 3, n))
    weight = _zipf_weights(ptype, config.zipf_exponent, rng)
    base_price = np.array([pt.price for pt in cat.types])[ptype]
    price = base_price * np.array(TIER_PRICE_FACTOR)[tier] * rng.lognormal(0.0, 0.15, n)
    price = np.maximum(np.floor(price) + 0.99, 1.99)
    draws = rng.integers(0, 1 << 30, size=(n, 12))
    table = _item_table(cat, ptype, brand, tier, price, draws)
    return _Items(table=table, ptype=ptype, brand=brand, tier=tier, weight=weight)


def _item_table(
    cat: _Catalogue, ptype: np.ndarray, brand: np.ndarray, tier: np.ndarray, price: np.ndarray, draws: np.ndarray
) -> pd.DataFrame:
    """The public items table: ids, titles, descriptions, brands, categories, prices."""
    width = max(6, len(str(len(ptype) - 1)))
    texts = [
        _item_text(cat, int(t), cat.brands[b], int(tr), d)
        for t, b, tr, d in zip(ptype, brand, tier, draws, strict=True)
    ]
    type_categories = [
        [cat.departments[cat.type_dept[t]], cat.category_names[cat.type_cat[t]], pt.name]
        for t, pt in enumerate(cat.types)
    ]
    return pd.DataFrame(
        {
            "item_id": [f"S{i:0{width}d}" for i in range(len(ptype))],
            "title": _dedupe_titles([title for title, _ in texts]),
            "description": [description for _, description in texts],
            "brand": [cat.brands[b] for b in brand],
            "categories": [list(type_categories[t]) for t in ptype],
            "price": [f"{p:.2f}" for p in price],
        }
    )


def _item_text(cat: _Catalogue, t: int, brand: str, tier: int, draw: np.ndarray) -> tuple[str, str]:
    """Title and two-sentence description of one item from its type's templates."""
    pt = cat.types[t]
    series = SERIES[tier][draw[0] % len(SERIES[tier])]
    attrs = {f: ATTRIBUTES[f][draw[2 + j] % len(ATTRIBUTES[f])] for j, f in enumerate(cat.type_fields[t])}
    title = pt.title.format(brand=brand, series=series, **attrs)
    intro = INTRO_TEMPLATES[draw[1] % len(INTRO_TEMPLATES)].format(
        brand=brand,
        series=series,
        noun=pt.name,
        use=pt.use,
        tier_adj=TIER_ADJECTIVES[tier][draw[10] % len(TIER_ADJECTIVES[tier])],
    )
    specs = ", ".join([*attrs.values(), f"{TIER_NAMES[tier]} range"])
    detail = DETAIL_TEMPLATE.format(feature=pt.features[draw[11] % len(pt.features)], specs=specs)
    return title, f"{intro[0].upper()}{intro[1:]} {detail}"


def _dedupe_titles(titles: list[str]) -> list[str]:
    """Make repeated titles distinct: the k-th repeat (k ≥ 1) gets ' (Gen k+1)'."""
    k = pd.Series(titles).groupby(titles, sort=False).cumcount().to_numpy()
    return [t if n == 0 else f"{t} (Gen {n + 1})" for t, n in zip(titles, k, strict=True)]


# ====================================================================== users


@dataclass(frozen=True)
class _Users:
    """Latent tastes of every user."""

    dept_cum: np.ndarray  # float [U, D]: cumulative department weights
    fav_brand: np.ndarray  # int [U, D]: favourite brand in each department
    loyalty: np.ndarray  # float [U]: chance a fresh / continue draw takes the favourite brand
    tier: np.ndarray  # int [U]: preferred price tier
    length: np.ndarray  # int [U]: sequence length


def _make_users(
    config: SyntheticConfig, cat: _Catalogue, items: _Items, brands: _GroupSampler, rng: np.random.Generator
) -> _Users:
    """Departments (Dirichlet weights over 1–3 of them), favourite brands, loyalty, tier, length."""
    n_u, n_d = config.n_users, len(cat.departments)
    stocked = np.bincount(cat.type_dept[items.ptype], minlength=n_d) > 0
    dept_pop = np.where(stocked, rng.lognormal(0.0, 0.4, n_d), 0.0)
    k_max = min(config.max_departments, 3, int(stocked.sum()))
    k = np.minimum(rng.choice([1, 2, 3], size=n_u, p=[0.35, 0.4, 0.25]), k_max)
    with np.errstate(divide="ignore"):
        keys = np.log(dept_pop)[None, :] + rng.gumbel(size=(n_u, n_d))  # Gumbel top-k = weighted draw
    top = np.argsort(-keys, axis=1)[:, :k_max]
    gamma = rng.gamma(config.dirichlet_alpha, size=(n_u, k_max)) * (np.arange(k_max)[None, :] < k[:, None])
    weights = np.zeros((n_u, n_d))
    np.put_along_axis(weights, top, gamma + 1e-12 * (np.arange(k_max)[None, :] == 0), axis=1)
    fav = brands.sample(np.tile(np.arange(n_d), n_u), rng).reshape(n_u, n_d)
    extra = rng.geometric(1.0 / (config.mean_length - config.min_length + 1.0), n_u) - 1
    return _Users(
        dept_cum=np.cumsum(weights, axis=1),
        fav_brand=fav,
        loyalty=rng.beta(2.0, 3.0, n_u),
        tier=rng.choice(3, size=n_u, p=[0.35, 0.45, 0.2]),
        length=np.minimum(config.min_length + extra, config.max_length),
    )


# ====================================================================== sequences


class _Samplers:
    """Every weighted draw the behaviour model needs, precomputed over the stocked catalogue."""

    def __init__(self, config: SyntheticConfig, cat: _Catalogue, items: _Items, rng: np.random.Generator) -> None:
        n_t, n_b, n_d = cat.n_types, len(cat.brands), len(cat.departments)
        self.n_b = n_b
        stocked = np.bincount(items.ptype, minlength=n_t) > 0
        is_primary = np.array([len(c) > 0 for c in cat.complements])
        type_w = rng.lognormal(0.0, 0.5, n_t) * np.where(is_primary, config.primary_boost, 1.0)
        live = np.flatnonzero(stocked)
        self.type_by_dept = _GroupSampler.build(cat.type_dept[live], type_w[live], n_d, members=live)
        self.type_by_cat = _GroupSampler.build(cat.type_cat[live], type_w[live], len(cat.categories), members=live)
        self.stocked_depts = np.unique(cat.type_dept[live])
        self.item_by_type = _GroupSampler.build(items.ptype, items.weight, n_t)
        self.item_by_type_tier = _GroupSampler.build(items.ptype * 3 + items.tier, items.weight, n_t * 3)
        self.item_by_type_brand = _GroupSampler.build(items.ptype * n_b + items.brand, items.weight, n_t * n_b)
        self.complement, self.n_complements = self._complement_table(cat, stocked)

    @staticmethod
    def _complement_table(cat: _Catalogue, stocked: np.ndarray) -> tuple[_GroupSampler, np.ndarray]:
        """Complement types of each primary type; earlier-listed accessories are bought more often."""
        owner: list[int] = []
        member: list[int] = []
        weight: list[float] = []
        for t, comps in enumerate(cat.complements):
            comps = comps[stocked[comps]] if stocked[t] else comps[:0]
            owner += [t] * len(comps)
            member += comps.tolist()
            weight += (1.0 / np.sqrt(np.arange(1, len(comps) + 1))).tolist()
        owner_a = np.array(owner, dtype=np.int64)
        sampler = _GroupSampler.build(owner_a, np.array(weight), cat.n_types, members=np.array(member, dtype=np.int64))
        return sampler, np.bincount(owner_a, minlength=cat.n_types)

    def items_for(
        self,
        types: np.ndarray,
        brands: np.ndarray,
        p_brand: np.ndarray,
        tiers: np.ndarray,
        p_tier: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """An item of each requested type: the given brand (prob p_brand), else the tier (p_tier), else any."""
        g_brand = types * self.n_b + brands
        g_tier = types * 3 + tiers
        use_brand = (rng.random(len(types)) < p_brand) & (self.item_by_type_brand.size(g_brand) > 0)
        use_tier = ~use_brand & (rng.random(len(types)) < p_tier) & (self.item_by_type_tier.size(g_tier) > 0)
        out = np.empty(len(types), dtype=np.int64)
        for mask, sampler, g in (
            (use_brand, self.item_by_type_brand, g_brand),
            (use_tier, self.item_by_type_tier, g_tier),
            (~use_brand & ~use_tier, self.item_by_type, types),
        ):
            if mask.any():
                out[mask] = sampler.sample(g[mask], rng)
        return out


@dataclass
class _Run:
    """Everything one generation pass reads, plus the per-user state it writes step by step."""

    config: SyntheticConfig
    cat: _Catalogue
    items: _Items
    users: _Users
    smp: _Samplers
    rng: np.random.Generator
    seq: np.ndarray  # int [U, L]: item ids, -1 past the end of a sequence
    mode: np.ndarray  # int [U, L]: how each item was drawn (MODE_*)
    primary: np.ndarray  # int [U]: the user's last primary item, -1 if none
    primary_step: np.ndarray  # int [U]: the step it was bought at


def _choose_modes(run: _Run, rows: np.ndarray, t: int) -> np.ndarray:
    """Complement (needs a primary within the window), continue, or fresh, for each row."""
    n = len(rows)
    if t == 0:
        return np.full(n, MODE_FRESH)
    cfg = run.config
    can_comp = (run.primary[rows] >= 0) & (t - run.primary_step[rows] <= cfg.complement_window)
    p_comp = np.where(can_comp, cfg.p_complement, 0.0)
    # without a recent primary, continue keeps its odds against fresh
    p_cont = np.where(can_comp, cfg.p_continue, min(1.0, cfg.p_continue / max(1e-12, 1.0 - cfg.p_complement)))
    r = run.rng.random(n)
    return np.where(r < p_comp, MODE_COMPLEMENT, np.where(r < p_comp + p_cont, MODE_CONTINUE, MODE_FRESH))


def _draw_fresh(run: _Run, rows: np.ndarray, t: int) -> np.ndarray:
    """A new product type from the user's departments (or any stocked one with p_explore)."""
    users, rng = run.users, run.rng
    cum = users.dept_cum[rows]
    u = rng.random(len(rows))[:, None] * cum[:, -1:]
    dept = (cum <= u).sum(axis=1)
    explore = rng.random(len(rows)) < run.config.p_explore
    dept[explore] = rng.choice(run.smp.stocked_depts, size=int(explore.sum()))
    types = run.smp.type_by_dept.sample(dept, rng)
    return run.smp.items_for(
        types, users.fav_brand[rows, dept], users.loyalty[rows], users.tier[rows], run.config.p_tier_match, rng
    )


def _draw_continue(run: _Run, rows: np.ndarray, t: int) -> np.ndarray:
    """Stay in the category of the last item: the same product type or a sibling type."""
    users, rng, cat = run.users, run.rng, run.cat
    last_type = run.items.ptype[run.seq[rows, t - 1]]
    sibling = run.smp.type_by_cat.sample(cat.type_cat[last_type], rng)
    types = np.where(rng.random(len(rows)) < run.config.p_same_type, last_type, sibling)
    brands = users.fav_brand[rows, cat.type_dept[types]]
    return run.smp.items_for(types, brands, users.loyalty[rows], users.tier[rows], run.config.p_tier_match, rng)


def _draw_complement(run: _Run, rows: np.ndarray, t: int) -> np.ndarray:
    """An accessory of the user's recent primary item, often of the same brand."""
    prim = run.primary[rows]
    types = run.smp.complement.sample(run.items.ptype[prim], run.rng)
    p_brand = np.full(len(rows), run.config.p_same_brand)
    return run.smp.items_for(
        types, run.items.brand[prim], p_brand, run.users.tier[rows], run.config.p_tier_match, run.rng
    )


_DRAWS = ((MODE_FRESH, _draw_fresh), (MODE_CONTINUE, _draw_continue), (MODE_COMPLEMENT, _draw_complement))


def _step(run: _Run, rows: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw the item of step `t` for users `rows`; returns (items, modes)."""
    mode = _choose_modes(run, rows, t)
    out = np.empty(len(rows), dtype=np.int64)
    for m, draw in _DRAWS:
        sel = mode == m
        if sel.any():
            out[sel] = draw(run, rows[sel], t)
    return out, mode


def _make_sequences(
    config: SyntheticConfig, cat: _Catalogue, items: _Items, users: _Users, rng: np.random.Generator
) -> _Run:
    """Generate every user's sequence, one step at a time for all users together."""
    n_u, max_len = config.n_users, int(users.length.max())
    run = _Run(
        config=config,
        cat=cat,
        items=items,
        users=users,
        smp=_Samplers(config, cat, items, rng),
        rng=rng,
        seq=np.full((n_u, max_len), -1, dtype=np.int64),
        mode=np.full((n_u, max_len), MODE_FRESH, dtype=np.int64),
        primary=np.full(n_u, -1, dtype=np.int64),
        primary_step=np.zeros(n_u, dtype=np.int64),
    )
    is_primary = run.smp.n_complements > 0
    for t in range(max_len):
        rows = np.flatnonzero(users.length > t)
        got, mode = _step(run, rows, t)
        lo = max(0, t - config.repeat_window)
        for _ in range(2 if t > lo else 0):  # redraw recent repeats (after that, a repeat purchase stays)
            again = (run.seq[rows, lo:t] == got[:, None]).any(axis=1)
            if not again.any():
                break
            got[again], mode[again] = _step(run, rows[again], t)
        run.seq[rows, t] = got
        run.mode[rows, t] = mode
        new_primary = is_primary[items.ptype[got]]
        run.primary[rows[new_primary]] = got[new_primary]
        run.primary_step[rows[new_primary]] = t
    return run


def _timestamps(run: _Run) -> np.ndarray:
    """Unix seconds per step: mode-dependent log-normal gaps, each user starting at a random time."""
    medians = np.zeros(3)
    for name, m in (("fresh", MODE_FRESH), ("continue", MODE_CONTINUE), ("complement", MODE_COMPLEMENT)):
        medians[m] = GAP_MEDIAN_SECONDS[name]
    gaps = np.clip(medians[run.mode] * run.rng.lognormal(0.0, 1.0, run.mode.shape), MIN_GAP_SECONDS, MAX_GAP_SECONDS)
    gaps[:, 0] = 0.0
    gaps[run.seq < 0] = 0.0
    room = 0.9 * (END_TIME - START_TIME)
    gaps *= np.minimum(1.0, room / np.maximum(gaps.sum(axis=1), 1.0))[:, None]
    step = np.floor(gaps).astype(np.int64) + (np.arange(gaps.shape[1]) > 0)  # +1 s: strictly increasing
    offsets = np.cumsum(step, axis=1)
    slack = END_TIME - START_TIME - offsets[:, -1]
    start = START_TIME + (run.rng.random(len(slack)) * slack).astype(np.int64)
    return start[:, None] + offsets


# ====================================================================== public entry point


def generate_synthetic(config: SyntheticConfig | None = None) -> Dataset:
    """Generate the synthetic dataset (deterministic given `config.seed`), split leave-one-out.

    The result is labelled synthetic everywhere: name "synthetic", format "synthetic",
    `info.synthetic=True`, and a note naming the seed and the generator settings.
    """
    config = config or SyntheticConfig()
    cat = _catalogue()
    rng = np.random.default_rng(config.seed)
    brands = _brand_sampler(cat, rng)
    items = _make_items(config, cat, brands, rng)
    users = _make_users(config, cat, items, brands, rng)
    run = _make_sequences(config, cat, items, users, rng)
    interactions = _interactions_frame(run.seq, _timestamps(run), items.table["item_id"].to_numpy())
    return build_dataset(
        name="synthetic",
        source=f"sidrec.data.synthetic (seed {config.seed})",
        format="synthetic",
        items=items.table,
        interactions=interactions,
        protocol="leave-one-out",
        max_history=config.max_history,
        time_kind="timestamp",
        synthetic=True,
        notes=[
            f"SYNTHETIC data generated by sidrec (sidrec.data.synthetic, seed {config.seed}): "
            "fictional items, brands and users; not real behaviour.",
            "generator config: " + json.dumps(config.model_dump(), sort_keys=True),
        ],
    )


def _interactions_frame(seq: np.ndarray, times: np.ndarray, item_ids: np.ndarray) -> pd.DataFrame:
    """Long table user_id, item_id, timestamp (already sorted by user, then time)."""
    n_u = seq.shape[0]
    width = max(6, len(str(n_u - 1)))
    user_ids = np.array([f"U{u:0{width}d}" for u in range(n_u)], dtype=object)
    valid = seq >= 0
    rows, _ = np.nonzero(valid)
    return pd.DataFrame(
        {"user_id": user_ids[rows], "item_id": item_ids[seq[valid]], "timestamp": times[valid]}
    )
