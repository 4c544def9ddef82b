"""Offline training sentences for the mountain tagger, written from templates.

Two tab-separated inputs (UTF-8, one header line):

* the gazetteer ``name<TAB>kind<TAB>region`` of real mountain names; ``kind`` is one of
  :data:`GAZETTEER_KINDS`; ranges are stored without "the" (``Alps``, ``Rocky Mountains``);
* the hard negatives ``name<TAB>kind``: names that look like mountains but are not (rivers, towns,
  people, lakes, parks, companies, streets, institutions, regions, ships and films); ``kind`` is
  one of :data:`NEGATIVE_KINDS`.

:func:`generate_template_dataset` fills hand-written sentence templates (:data:`TEMPLATES`) with
gazetteer names (the mountains, tagged ``B-/I-MOUNTAIN``) and negatives (every other proper name
in the sentence, tagged ``O``), tokenises with :func:`~geolab.ner.dataset.tokenize` and tags every
occurrence of each mountain with :func:`~geolab.ner.dataset.tag_span`, so tags always agree with
the text. A leading "the" stays outside the entity ("the Alps" -> ``O B``), as in Few-NERD.

Template syntax: ``{SLOT}`` is filled; ``[a|b]`` picks ``a`` when the sentence's main mountain is
grammatically singular and ``b`` when it is plural ("the Alps [is|are]").
Mountain slots: ``{M}`` the main mountain as a writer would put it ("the Matterhorn", "the Alps",
"Mount Hood" or "Mt. Hood"), ``{N}`` its bare name, ``{Mpos}`` its possessive, ``{P1}``-``{P3}``
further peaks, ``{R1}``/``{R2}`` ranges, ``{G1}`` a glacier, ``{S1}`` a pass.

Other names, all ``O``: ``{city}``, ``{river}``, ``{person}``, ``{lake}``, ``{park}``,
``{company}``, ``{street}``, ``{inst}``, ``{region}``, ``{other}`` (from the negatives; city,
river and person sometimes another real or made-up name), ``{country}``, ``{state}``,
``{county}``, ``{org}``, ``{team}``, ``{title}``, ``{site}`` ("Karvelo Dam"); a digit makes a
second one (``{city2}``).
Values: ``{elev}`` ("(4,478 m)", "( )"...), ``{m}``, ``{ft}``, ``{km}``, ``{dist}``, ``{area}``,
``{year}``, ``{year2}``, ``{decade}``, ``{day}``, ``{month}``, ``{weekday}``, ``{age}``,
``{mil}``, ``{n}``, ``{num}``, ``{ord}``, ``{dir}``, ``{nat}``, ``{kn}`` (what the main
mountain's kind is called: "glacier", "mountain range").
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import random
import re
from collections.abc import Collection
from pathlib import Path

from geolab.ner.dataset import DatasetError, Sentence, _read_text, entities, tag_span, tokenize

log = logging.getLogger(__name__)

GAZETTEER_KINDS: tuple[str, ...] = (
    "peak",
    "mountain",
    "range",
    "hills",
    "massif",
    "volcano",
    "glacier",
    "pass",
    "plateau",
    "ridge",
)
NEGATIVE_KINDS: tuple[str, ...] = (
    "river",
    "city",
    "person",
    "lake",
    "park",
    "company",
    "street",
    "institution",
    "region",
    "other",
)


@dataclasses.dataclass
class Entry:
    """One gazetteer or negatives row (``region`` is "" for negatives)."""

    name: str
    kind: str
    region: str = ""


def _read_tsv(path: str | Path, columns: tuple[str, ...], kinds: tuple[str, ...]) -> list[Entry]:
    path = Path(path)
    lines = _read_text(path).splitlines()
    header = "\t".join(columns)
    if not lines or not lines[0].strip():
        raise DatasetError(f"{path}:1: empty file, expected the header '{header}'")
    if lines[0].rstrip("\r") != header:
        raise DatasetError(f"{path}:1: expected the header {header!r}, got {lines[0]!r}")
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = [c.strip() for c in line.rstrip("\r").split("\t")]
        if len(cols) != len(columns):
            raise DatasetError(
                f"{path}:{lineno}: expected {len(columns)} tab-separated columns "
                f"({', '.join(columns)}), got {len(cols)}"
            )
        name, kind = cols[0], cols[1]
        if not name:
            raise DatasetError(f"{path}:{lineno}: empty name")
        if not tokenize(name):
            raise DatasetError(f"{path}:{lineno}: name {name!r} has no word")
        if kind not in kinds:
            raise DatasetError(
                f"{path}:{lineno}: unknown kind {kind!r} (valid: {', '.join(kinds)})"
            )
        key = name.casefold()
        if key in seen:
            raise DatasetError(
                f"{path}:{lineno}: duplicate name {name!r} (first on line {seen[key]})"
            )
        seen[key] = lineno
        entries.append(Entry(name, kind, cols[2] if len(cols) > 2 else ""))
    if not entries:
        raise DatasetError(f"{path}: no entries after the header")
    return entries


def read_gazetteer(path: str | Path) -> list[Entry]:
    """Read the gazetteer TSV (``name``, ``kind``, ``region``).

    Raises:
        DatasetError: missing file, not UTF-8, wrong header, a wrong column count, an empty name,
            an unknown kind, a duplicate name (case-insensitive) or no entry; the message names
            the file and line.
    """
    return _read_tsv(path, ("name", "kind", "region"), GAZETTEER_KINDS)


def read_negatives(path: str | Path) -> list[Entry]:
    """Read the hard-negatives TSV (``name``, ``kind``); ``region`` is "".

    Raises:
        DatasetError: as :func:`read_gazetteer`.
    """
    return _read_tsv(path, ("name", "kind"), NEGATIVE_KINDS)


# --- fillers that are not in the negatives file (all of them O) -------------------------------

COUNTRIES: tuple[str, ...] = (
    "Switzerland",
    "Austria",
    "Italy",
    "France",
    "Germany",
    "Slovenia",
    "Croatia",
    "Bosnia and Herzegovina",
    "Bulgaria",
    "Romania",
    "Poland",
    "Slovakia",
    "Norway",
    "Sweden",
    "Iceland",
    "Scotland",
    "Wales",
    "Spain",
    "Portugal",
    "Greece",
    "Turkey",
    "Iran",
    "Pakistan",
    "India",
    "China",
    "Mongolia",
    "Japan",
    "South Korea",
    "Indonesia",
    "the Philippines",
    "New Zealand",
    "Australia",
    "Canada",
    "the United States",
    "Mexico",
    "Peru",
    "Chile",
    "Argentina",
    "Bolivia",
    "Ecuador",
    "Colombia",
    "Ethiopia",
    "Tanzania",
    "Uganda",
    "Morocco",
    "South Africa",
    "Antarctica",
    "Russia",
    "Kazakhstan",
    "Georgia",
)
STATES: tuple[str, ...] = (
    "California",
    "Washington",
    "Oregon",
    "Utah",
    "Arizona",
    "New Mexico",
    "Idaho",
    "Wyoming",
    "Nevada",
    "New Hampshire",
    "North Carolina",
    "Tennessee",
    "Virginia",
    "West Virginia",
    "Pennsylvania",
    "New York",
    "Maine",
    "British Columbia",
    "Alberta",
    "Quebec",
    "Yukon",
    "Queensland",
    "New South Wales",
    "Tasmania",
    "Otago",
    "Canterbury",
    "Hokkaido",
    "Sichuan",
    "Yunnan",
    "Xinjiang",
    "Uttarakhand",
    "Sikkim",
    "Lower Austria",
    "Upper Bavaria",
    "Lombardy",
    "Trentino",
    "Catalonia",
    "Andalusia",
    "Asturias",
    "Brașov County",
)
COUNTIES: tuple[str, ...] = (
    "Essex County",
    "Jefferson County",
    "Lincoln County",
    "Grant County",
    "Douglas County",
    "Madison County",
    "Franklin County",
    "Carbon County",
    "Park County",
    "Chelan County",
    "Inyo County",
    "Pitkin County",
    "Hamilton County",
    "Warren County",
    "Cumbria",
    "Gwynedd",
    "Kerry",
    "Highland",
)
FIRST_NAMES: tuple[str, ...] = (
    "Anna",
    "Peter",
    "Maria",
    "John",
    "Elena",
    "Tomas",
    "Hans",
    "Claire",
    "Pierre",
    "Giulia",
    "Marco",
    "Jan",
    "Ewa",
    "Kenji",
    "Aiko",
    "Pemba",
    "Ang",
    "Nirmal",
    "Ines",
    "Carlos",
    "Lucy",
    "Daniel",
    "Sarah",
    "James",
    "Ingrid",
    "Lars",
    "Olga",
    "Ivan",
    "Mehmet",
    "Fatima",
    "Ruth",
    "Walter",
    "Emil",
    "Margaret",
    "Thomas",
    "Ali",
)
SURNAMES: tuple[str, ...] = (
    "Keller",
    "Moser",
    "Rossi",
    "Dubois",
    "Novak",
    "Kowalski",
    "Tanaka",
    "Sherpa",
    "Lama",
    "Purja",
    "Fischer",
    "Brown",
    "Smith",
    "Taylor",
    "Campbell",
    "Hansen",
    "Berg",
    "Ivanova",
    "Petrov",
    "Yilmaz",
    "Garcia",
    "Alvarez",
    "Okafor",
    "Wilson",
    "Harris",
    "Clarke",
    "Müller",
    "Weber",
    "Lambert",
    "Ferrari",
    "Horvat",
    "Nakamura",
    "Ahmed",
    "Singh",
    "Bauer",
    "Walsh",
)
NATIONALITIES: tuple[str, ...] = (
    "British",
    "Swiss",
    "Italian",
    "French",
    "German",
    "Austrian",
    "Polish",
    "Slovenian",
    "Japanese",
    "American",
    "Canadian",
    "Nepali",
    "Pakistani",
    "Spanish",
    "Norwegian",
    "Chilean",
    "Argentine",
    "Korean",
    "Russian",
    "Kazakh",
    "New Zealand",
    "Australian",
)
MONTHS: tuple[str, ...] = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
DIRECTIONS: tuple[str, ...] = (
    "north",
    "south",
    "east",
    "west",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
)
ORDINALS: tuple[str, ...] = ("second", "third", "fourth", "fifth", "sixth", "seventh")
SMALL_NUMBERS: tuple[str, ...] = ("two", "three", "four", "five", "six", "seven", "eight", "ten")

# More O names, so that an unfamiliar proper name is not by itself a sign of a mountain: real
# towns and names from many languages, and made-up ones built from syllables (:func:`_made_up`).
TOWNS: tuple[str, ...] = (
    "Rotterdam",
    "Leeds",
    "Lyon",
    "Osaka",
    "Gdańsk",
    "Plovdiv",
    "Tartu",
    "Košice",
    "Bergen",
    "Tromsø",
    "Akureyri",
    "Valparaíso",
    "Cochabamba",
    "Mombasa",
    "Jinja",
    "Gondar",
    "Fez",
    "Shiraz",
    "Peshawar",
    "Multan",
    "Chengde",
    "Kaohsiung",
    "Sendai",
    "Daegu",
    "Bendigo",
    "Invercargill",
    "Timaru",
    "Spokane",
    "Bozeman",
    "Missoula",
    "Duluth",
    "Lynchburg",
    "Knoxville",
    "Moncton",
    "Kamloops",
    "Nelson",
    "Cluj-Napoca",
    "Sibiu",
    "Maribor",
    "Kraków",
    "Zakopane",
    "Trondheim",
    "Umeå",
    "Penrith",
    "Ambleside",
    "Fort William",
    "Aviemore",
    "Inverness",
    "Galway",
    "Tralee",
)
MORE_FIRST_NAMES: tuple[str, ...] = (
    "Phurba",
    "Dorje",
    "Mingma",
    "Lhakpa",
    "Tashi",
    "Wang",
    "Li",
    "Hiroshi",
    "Yuki",
    "Min-jun",
    "Ji-woo",
    "Aroha",
    "Wiremu",
    "Kwame",
    "Amara",
    "Chidi",
    "Tendai",
    "Oumar",
    "Idris",
    "Leila",
    "Reza",
    "Darius",
    "Aleksander",
    "Zofia",
    "Mihai",
    "Ioana",
    "Bogdan",
    "Milena",
    "Dragan",
    "Ljubica",
    "Sven",
    "Astrid",
    "Eero",
    "Aino",
    "Siobhan",
    "Cormac",
    "Rhys",
    "Eilidh",
    "Joaquín",
    "Ximena",
    "Tupac",
    "Rosa",
    "Hamish",
    "Brigitte",
    "Ulrich",
    "Matteo",
    "Chiara",
    "Nikos",
)
MORE_SURNAMES: tuple[str, ...] = (
    "Dhondup",
    "Norbu",
    "Tamang",
    "Gurung",
    "Rai",
    "Chen",
    "Zhao",
    "Watanabe",
    "Kobayashi",
    "Jeon",
    "Ngata",
    "Mensah",
    "Okonkwo",
    "Diallo",
    "Haile",
    "Karimi",
    "Farahani",
    "Nowak",
    "Wiśniewski",
    "Popescu",
    "Ionescu",
    "Kovačević",
    "Petrović",
    "Lindqvist",
    "Virtanen",
    "Ó Súilleabháin",
    "MacLeod",
    "Llewellyn",
    "Quispe",
    "Mamani",
    "Villanueva",
    "Arbuthnot",
    "Dalgleish",
    "Brandstätter",
    "Zanetti",
    "Papadopoulos",
    "Thorvaldsen",
    "Eriksson",
)
ORG_FORMS: tuple[str, ...] = (
    "{X} Airlines",
    "{X} Group",
    "{X} Records",
    "{X} Bank",
    "{X} Motors",
    "{X} Foundation",
    "{X} Press",
    "{X} Holdings",
    "{X} Railway Company",
    "{X} Broadcasting",
    "University of {X}",
    "{X} Institute of Technology",
    "{X} Theatre",
    "{X} Party",
    "{X} Orchestra",
    "{X} Mining Company",
)
TEAM_FORMS: tuple[str, ...] = (
    "{X} United",
    "{X} Rovers",
    "FC {X}",
    "{X} City",
    "{X} Athletic",
    "{X} Wanderers",
    "Real {X}",
    "{X} Tigers",
    "{X} Hawks",
    "{X} Rangers",
)
# places that are not mountains, named like one: a name and a landform or building word
SITE_FORMS: tuple[str, ...] = (
    "{X} Dam",
    "{X} Reservoir",
    "{X} Airport",
    "{X} Castle",
    "{X} Cathedral",
    "{X} Bridge",
    "{X} Station",
    "{X} Plain",
    "{X} Basin",
    "{X} Bay",
    "{X} Island",
    "{X} Falls",
    "{X} Abbey",
    "{X} Museum",
    "{X} Building",
    "{X} Canal",
    "{X} Ice Field",
    "{X} Gorge",
    "{X} Lagoon",
    "{X} Lighthouse",
)
TITLE_WORDS: tuple[str, ...] = (
    "Silent",
    "Night",
    "River",
    "Summer",
    "Stone",
    "Love",
    "Last",
    "Light",
    "Winter",
    "Road",
    "Blue",
    "Heart",
    "Fire",
    "Dream",
    "Home",
    "Long",
    "Wild",
    "Golden",
    "Shadow",
    "City",
    "Song",
    "Kingdom",
    "Black",
    "Glass",
)
_SYLLABLES: tuple[str, ...] = (
    "ka", "ro", "ven", "tal", "mir", "dor", "sa", "lin", "bra", "gu", "ne", "ost", "el", "ar",
    "vik", "zan", "ber", "lo", "ma", "ti", "ul", "gor", "nes", "ha", "pe", "dri", "sko", "va",
    "len", "tor", "qui", "shan", "bu", "rek", "mo", "tse", "wa", "nik", "ol", "fa",
)  # fmt: skip

# what a gazetteer kind is called in running text, and which template groups it can fill
KIND_NOUN: dict[str, str] = {
    "peak": "peak",
    "mountain": "mountain",
    "volcano": "volcano",
    "massif": "massif",
    "range": "mountain range",
    "hills": "range of hills",
    "glacier": "glacier",
    "pass": "mountain pass",
    "plateau": "plateau",
    "ridge": "ridge",
}
KIND_GROUPS: dict[str, tuple[str, ...]] = {
    "peak": ("summit", "summit_bare"),
    "mountain": ("summit", "summit_bare"),
    "volcano": ("summit", "summit_bare", "volcano"),
    "massif": ("range", "massif"),
    "range": ("range", "range_bare"),
    "hills": ("range", "hills"),
    "glacier": ("glacier",),
    "pass": ("pass",),
    "plateau": ("plateau",),
    "ridge": ("ridge",),
}
# which kinds fill the secondary mountain slots
SECONDARY_KINDS: dict[str, tuple[str, ...]] = {
    "P": ("peak", "mountain", "volcano"),
    "R": ("range", "hills", "massif"),
    "G": ("glacier",),
    "S": ("pass",),
}
# which negative kinds fill the context slots (the second slot of a kind is "city2" etc.)
CONTEXT_KINDS: dict[str, str] = {
    "city": "city",
    "river": "river",
    "person": "person",
    "lake": "lake",
    "park": "park",
    "company": "company",
    "street": "street",
    "inst": "institution",
    "region": "region",
    "other": "other",
}
_SUMMIT_SUFFIXES = ("horn", "spitze", "stock", "kogel", "kofel", "joch", "hörnli", "grat")
_RANGE_WORDS = {"range", "mountains", "hills", "alps", "massif", "mts", "highlands", "ranges"}
_SINGULAR_S = {"atlas", "caucasus", "taurus", "olympus", "parnassus", "pindus"}


def _lines(block: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in block.strip().splitlines() if s.strip())


# --- the templates ------------------------------------------------------------------------------
# One template a line. Never write "the" before a mountain slot: {M}, {P1}, {R1}... put it there
# themselves when the name takes it ("the Alps", "the Matterhorn", "Mount Hood").

_SUMMIT = """
{M} {elev} is a mountain in {R1}, on the border between {country} and {country2}.
{M} is a peak in {county}, {state}.
With an elevation of {m} metres, {M} is the highest point in {state}.
{M} was first climbed on {day} {month} {year} by {person} and {person2}.
The first ascent of {M} was made in {year} by a {nat} expedition led by {person}.
{Mpos} north face was not climbed until {year}.
Climbers usually approach {M} from {city}, two days' walk to the south.
The village of {city} lies at the foot of {M}.
On a clear day {M} can be seen from {city}, more than {km} kilometres away.
{M} rises above the valley of the {river} to a height of {m} m.
The trail to the summit of {M} starts near the shore of {lake}.
{M}, the highest peak of {R1}, reaches {m} metres.
The highest peak of {R1} is {M} {elev}.
Between {P1} and {M} lies a broad saddle that is covered in snow for most of the year.
{P1}, {P2} and {M} form a chain of summits above {city}.
The view from {M} takes in {P1}, {P2} and much of {R1}.
A cable car from {city} carries visitors to a station just below the summit of {M}.
In winter the slopes of {M} are a popular ski area for people from {city}.
The hut on {M} was built in {year} and is run by the local section of the alpine club.
{M} is named after {person}, who surveyed the area in the {decade}.
Local legend holds that a dragon once lived in a cave on {M}.
Snow fell on {M} overnight, and the road towards the summit was closed.
Rescue teams reached the stranded hikers on {M} late on {weekday}.
The summit of {M} is often hidden in cloud, even in {month}.
{M} ({m} m) is the {ord} highest mountain in {country}.
{M} is the {ord} highest peak in {R1}.
{person} died while descending from {M} in {year}.
Scientists have measured the retreat of the ice on {M} since {year}.
Geologists believe that {M} was formed about {mil} million years ago.
The rocks of {M} are mainly granite and gneiss.
{M} is made of limestone that was laid down in a shallow sea.
The {river} rises on the southern slopes of {M}.
The weather station on {M} recorded gusts of more than 150 km/h.
Fog and strong winds forced the team to turn back a few hundred metres below the top of {M}.
{M} lies {km} km {dir} of {city}.
From {city} a road climbs towards {M} through forests of pine and larch.
The {nat} climber {person} reached the top of {M} without supplementary oxygen.
In {year}, {person} made the first solo ascent of {M}.
{M} was sacred to the people of the valley, who left offerings on its slopes.
Pilgrims have climbed {M} for centuries to pray at the small shrine on its summit.
A monastery was founded on the slopes of {M} in the {ord} century.
The painter {person} returned to {M} again and again in later works.
The railway from {city} to {city2} passes beneath {M} in a long tunnel.
The road tunnel under {M} was opened in {year}.
An avalanche on {M} killed {n} climbers in {month} {year}.
{M} is the source of the {river}.
Its highest point is {M}, at {m} metres above sea level.
The highest mountain on the island is {M} {elev}.
Other peaks in the area include {P1} {elev}, {P2} and {M}.
{M} and {P1} are the two highest summits of {R1}.
{M} overlooks {lake} and the town of {city}.
A ski lift runs from {city} up the western flank of {M}.
The border between {country} and {country2} runs across the summit of {M}.
Army engineers built a radar station on top of {M} during the war.
The television transmitter on {M} serves most of {state}.
During the battle the {ord} battalion held the slopes of {M} for three days.
{person} spent the winter of {year} in a hut below {M}.
The normal route on {M} follows the east ridge.
Most climbers reach the top of {M} by the southwest ridge, which is graded as a scramble.
{M} is a popular destination for hikers from {city} and {city2}.
The national park protects the old forests around {M}.
{M} is home to a rare species of alpine poppy.
The beetle is known only from the upper slopes of {M}.
The species occurs in {country}, where it has been recorded on {M} at about {m} m.
Wolves and bears still roam the forests below {M}.
Heavy rain set off a landslide on {M} on {weekday}, cutting the road to {city}.
Police closed the road over the shoulder of {M} after a rockfall.
Tourists crowd the viewpoint facing {M} every summer.
The hotel in {city} offers rooms with a view of {M}.
More than a thousand people have climbed {M} since {year}.
The name {N} comes from an old word meaning "white head".
Older maps give {N} a different name.
The summit cross on {M} was put up in {year}.
{M} stands at the head of the {river} valley.
After climbing {P1}, the team moved on to {M}.
She climbed {M} at the age of {age}.
He became the youngest person to stand on top of {M}.
Their attempt on {M} ended when a storm hit the upper camp.
Base camp for {M} is usually set up beside a glacier at about {m} m.
{M} is visible from the motorway between {city} and {city2}.
The observatory near {M} takes advantage of the dry, clear air.
{Mpos} summit is a broad dome of rock and ice.
{Mpos} southern slopes are covered with vineyards.
{Mpos} first winter ascent took place in {year}.
A memorial to {person} stands near the top of {M}.
It is the highest peak between {M} and {P1}.
The ridge continues from {M} to {P1} before dropping to a col.
The route crosses the saddle between {M} and {P1}.
{M} is less well known than its neighbour {P1}, but the views are just as good.
Unlike {P1}, {M} can be climbed without ropes in summer.
At {m} m, {M} is slightly higher than {P1}.
Is {M} really higher than {P1}?
Few people have heard of {M}, yet it is the highest summit in {county}.
The first recorded ascent of {M} was in {year}, but shepherds had probably been there earlier.
In {year} a plane carrying {n} passengers crashed into {M} in bad weather.
{person} wrote a poem about {M} after a visit to {city} in {year}.
The novel is set in a small village below {M}.
{company} used a photograph of {M} on its packaging.
The peak now known as {N} was renamed in {year}.
The town of {city} sits in the shadow of {M}.
{M} dominates the skyline of {city}.
The views of {M} from {city} attract photographers all year round.
They camped on the shoulder of {M} before the final push to the summit.
A new route on {M} was opened by {person} and {person2} in {year}.
The mountain rescue team brought an injured climber down from {M} on {weekday}.
Thousands of walkers climb {M} every year, one of the busiest summits in {country}.
The race goes from {city} to the top of {M} and back.
The annual hill race up {M} attracts runners from all over {country}.
The riders climbed the road below {M} before the descent into {city}.
The ski resort on {M} hosted a World Cup race in {year}.
Glaciers once covered much of {M}.
A small glacier survives in a hollow on the north side of {M}.
Lightning struck the summit of {M} twice in one afternoon.
Temperatures on {M} dropped to minus {n} degrees last night.
Forecasters expect heavy snow above {m} metres, including on {M}.
Lenticular clouds formed over {M} ahead of the storm.
{M} {elev} towers over the eastern shore of {lake}.
The lake lies in a cirque below {M}.
From the top of {M} one can see {lake} and, in good weather, {P1}.
The area around {M} was declared a nature reserve in {year}.
Mining on {M} began in the {decade} and ended a century later.
Silver was found near {M} in {year}, and the town of {city} grew quickly.
The hillsides below {M} were terraced for rice and tea.
Shepherds still take their flocks up to the pastures below {M} in summer.
{person} was born in {city}, a small town at the foot of {M}.
In the {decade}, {person} surveyed {M} and put its height at {m} m.
The survey of {year} fixed the height of {M} at {ft} feet.
{M} {elev} was first surveyed by the {nat} army in {year}.
The western face of {M} drops almost {m} metres to the valley floor.
The three highest summits of the area are {P1} {elev}, {P2} {elev} and {M} {elev}.
Among the summits visible from the pass are {M}, {P1} and {P2}.
He climbed {M}, {P1}, {P2} and {P3} in a single season.
The first ascents of {M} and {P1} both came in the summer of {year}.
{M} sits at the junction of three long ridges.
{M} was long thought to be the highest mountain in {country}.
{M} is an isolated peak that rises from the plains of {state}.
At the foot of {M} the {river} turns sharply to the {dir}.
{M} is the most prominent peak in {state}.
Until {year}, {M} was known in English by another name.
The film crew spent three weeks on {M}.
A webcam on {M} sends a new picture every ten minutes.
{M} gets about {n} metres of snow each winter.
{M} {elev}, {P1} {elev} and {P2} {elev} are the main summits of the group.
Rising to {m} m, {M} is the highest point of the island; it was first climbed in {year}.
{M} {elev} lies on the border of {county}, about {km} km {dir} of {city}.
The main summits of the group are {P1} {elev}, {P2} {elev}, {P3} {elev} and {M} {elev}.
In {month} {year}, {person} and {person2} made the first traverse from {P1} to {M}.
After the war a road was built from {city} to the foot of {M}, and tourism came to the valley.
{M} is a mountain of {m} m in {R1}, between {P1} to the north and {P2} to the south.
The station lies on the line from {city} to {city2}, in a valley below {M} and {P1}.
The artist later moved to {city} and spent decades painting {M} and the peaks around it.
The first people known to have reached the summit of {M} were members of a survey party in {year}.
Because it stands alone, {M} is visible from far away and was a landmark for sailors.
Notable peaks include {P1} ({m} m), {P2}, {P3} and {M}.
Climbers from {city} made ascents of {P1}, {M} and several smaller peaks in the summer of {year}.
{M}, {P1} and {P2} are often climbed together from a hut on the glacier.
The valley is enclosed by {M} on the west and by {P1} and {P2} on the east.
"""

_SUMMIT_BARE = """
The {N} mountain rises above the village of {city}.
{N} mountain is covered with beech forest up to about {m} m.
Sheep graze on the lower slopes of the mountain of {N}.
The {N} massif is cut by deep gorges on its eastern side.
The {N} area is popular with climbers from {city}.
Walkers reach {N} summit from {city} in about five hours.
The hut lies on the path from {city} to {N} peak.
The villages around {N} mountain were evacuated during the fire.
"""

_VOLCANO = """
{M} last erupted in {year}, covering {city} in ash.
{M} is an active stratovolcano in {country}.
Lava from {M} reached the edge of {city} in {year}.
The eruption of {M} in {year} sent ash high into the atmosphere.
Scientists watch {M} closely for signs of new volcanic activity.
{M} is a dormant volcano whose crater holds a small lake.
Steam still rises from vents near the summit of {M}.
The {year} eruption of {M} forced the evacuation of {city}.
{M} is one of the most active volcanoes in {country}.
Flights to {city} were cancelled after {M} erupted again.
The volcanic soils around {M} are very fertile.
{M} is a shield volcano built up by countless lava flows.
The crater of {M} is about {km} kilometres across.
Small earthquakes beneath {M} became more frequent in the weeks before the eruption.
The ash cloud from {M} drifted {dir} towards {city}.
{M} and {P1} are both volcanoes, but only {M} is still active.
"""

_RANGE = """
{M} [stretches|stretch] for about {dist} kilometres across {country}.
{M} [forms|form] a natural barrier between {country} and {country2}.
The highest peak of {M} is {P1} {elev}.
{P1}, the highest peak in {M}, rises to {m} m.
{P1} {elev} is the highest summit of {M}.
The {river} rises in {M} and flows {dir} to the sea.
The railway crosses {M} through a series of tunnels.
The road across {M} is often closed by snow in winter.
{M} [was|were] formed when two continental plates collided.
The rocks of {M} are among the oldest in {country}.
Much of {M} is covered by dense forest.
The town of {city} lies on the edge of {M}.
{city} is a good base for walking in {M}.
The species is found only in {M} and nearby hills.
The frog lives in cold streams in {M}.
{M} [is|are] part of a longer chain of mountains that runs through {country}.
{M} [lies|lie] to the {dir} of {city}.
The climate of {state} is shaped by {M}, which [blocks|block] moist air from the sea.
Most of the rain falls on the western side of {M}.
{M} [separates|separate] the basin of the {river} from that of the {river2}.
Many rivers rise in {M}, among them the {river}.
{person} explored {M} in the {decade} and mapped many of [its|their] valleys.
The expedition spent two summers in {M}, climbing several unnamed peaks.
Skiing in {M} began early in the twentieth century.
The ski resorts of {M} attract visitors from {city} and {city2}.
Wolves returned to {M} in the {decade}.
The foothills of {M} are covered in vineyards and orchards.
Snow lay late on {M} this year.
The battle was fought in the foothills of {M}.
Partisans hid in {M} throughout the war.
The old trade route crossed {M} by a high pass.
{M} [is|are] home to more than a hundred peaks above {m} metres.
{M} [rises|rise] steeply from the coastal plain.
{M} [runs|run] parallel to the coast for most of [its|their] length.
The border follows the crest of {M} for some distance.
Of all the ranges in {country}, {M} [is|are] the least explored.
{M} and {R2} are separated by the valley of the {river}.
{P1} and {P2} are the best-known summits of {M}.
{M} [includes|include] {P1}, {P2} and several lesser peaks.
The road from {city} to {city2} runs along the northern edge of {M}.
Hikers crossing {M} should carry enough water for several days.
The geology of {M} has been studied since the {decade}.
Fossils of sea creatures have been found high in {M}.
{M} [was|were] uplifted about {mil} million years ago.
Glaciers shaped the valleys of {M} during the last ice age.
On clear days {M} can be seen from {city}.
The monastery lies in a remote valley of {M}.
A long-distance trail follows {M} from one end to the other.
Forest fires burned large parts of {M} last summer.
The {nat} army withdrew into {M} after its defeat near {city}.
Small villages are scattered across {M}.
{M} [was|were] declared a protected landscape in {year}.
The painter spent many summers in {M}, not far from {city}.
The wine region lies between {M} and the {river}.
{P1} in {M} was first climbed in {year}.
Ecologists describe {M} as a hotspot of biodiversity.
The peaks of {M} rise to more than {m} metres.
{M} [lies|lie] entirely within {country}.
Some of the highest villages in {country} are in {M}.
In the west, {M} [merges|merge] with {R2}.
{P1}, {P2} and {P3} are among the high peaks of {M}.
{M} and {R2} meet near the source of the {river}.
Farmers on the slopes of {M} grow coffee and bananas.
The bighorn sheep of {M} live above the tree line.
The {river} flows {dir} from its source in {M} and empties into {lake} after about {dist} km.
The region is bounded by {M} to the north, {R2} to the south and the {river} to the east.
The reserve lies in the foothills of {M}, about {km} km from {city}, and protects old forest.
{M} and {R2} are the main mountain ranges of {country}, with peaks such as {P1} and {P2}.
During the {decade}, prospectors from {city} pushed deep into {M} in search of gold and silver.
The railway, completed in {year}, crosses {M} through a long tunnel between {city} and {city2}.
The highest peaks of {M} are {P1} {elev}, {P2} {elev} and {P3} {elev}.
"""

_RANGE_BARE = """
The {N} range extends for hundreds of kilometres across {country}.
The {N} mountains rise to the {dir} of {city}.
Snow closed the roads through the {N} range for a week.
{person} led the first survey of the {N} range in {year}.
The highest peak in the {N} range is {P1}.
The {river} cuts a deep gorge through the {N} mountains.
"""

_MASSIF = """
{M} is a compact massif of granite peaks.
Several glaciers flow down from {M}.
The highest point of {M} is {P1}.
{M} lies between the valleys of the {river} and the {river2}.
Climbers from {city} train on the crags of {M}.
{M} covers an area of about {area} square kilometres.
"""

_HILLS = """
{M} [is a|are a] range of low hills in {state}.
Sheep graze on {M} above {city}.
{M} [rises|rise] gently from the farmland {dir} of {city}.
Walkers can follow a path along the crest of {M}.
{M} [gives|give] fine views over the {river} valley.
The Iron Age fort on {M} was excavated in {year}.
{M} [is|are] the highest ground between {city} and the coast.
Springs at the foot of {M} supplied {city} with water.
"""

_GLACIER = """
{M} flows {dir} from {P1} into {lake}.
{M} is a valley glacier about {km} km long in {R1}.
{M} has retreated by more than a kilometre since {year}.
{M} is a tributary glacier that flows {dir} between {P1} and {P2} into {G1}.
{M} feeds the {river}, which flows through {city}.
Meltwater from {M} forms a small lake at its snout.
Scientists drilled an ice core on {M} in {year}.
Crevasses on {M} make the crossing dangerous late in summer.
The hut stands on a rock island above {M}.
{M} is the largest glacier in {R1}.
The snout of {M} can be reached on foot from {city} in two hours.
Photographs from {year} show {M} reaching much further down the valley.
{M} descends from the north face of {P1}.
Climbers cross {M} on their way to the summit of {P1}.
{M} was named after {person}, a member of the {year} expedition.
{M} and {G1} join below {P1}.
The ice of {M} is several hundred metres thick in places.
A body found on {M} in {year} was identified as a climber missing since the {decade}.
Tourists walk on {M} with local guides.
{M} calves into the sea, leaving icebergs in the bay.
The coastal ice cliffs of {M} have retreated several hundred metres.
"""

_PASS = """
{M} {elev} links {city} with {city2}.
The road over {M} is closed from November to May.
{M} connects the valleys of the {river} and the {river2}.
Traders and pilgrims have used {M} since Roman times.
The army crossed {M} in {month} {year}, losing many horses in the snow.
Riders in the race crossed {M} before the final climb.
{M} lies between {P1} and {P2}.
A hospice on {M} has sheltered travellers since the Middle Ages.
The railway tunnel beneath {M} was opened in {year}.
{M} is the highest paved road in {country}.
From the top of {M} there is a fine view of {P1}.
Smugglers once used {M} to carry goods into {country}.
{M} is the easiest route between {country} and {country2}.
Heavy snow closed {M} overnight, stranding drivers near {city}.
The border post on {M} was closed in {year}.
{M} separates {R1} from {R2}.
The old mule track to {M} starts in {city}.
A mountain stage of the tour finished on {M} in {year}.
"""

_PLATEAU = """
{M} lies at an average elevation of {m} metres.
{M} is a high plateau in {country}, cut by deep canyons.
The {river} drains much of {M}.
Herders graze yaks on {M} in summer.
{M} has a cold, dry climate with little rain.
Strong winds sweep across {M} throughout the winter.
The rocks of {M} are layers of sandstone and basalt.
{city} lies on the edge of {M}.
The railway climbs onto {M} through a series of loops.
{M} rises well above the surrounding lowlands.
Archaeologists found stone tools on {M} that are thousands of years old.
{M} was built up by lava flows that covered the whole region.
"""

_RIDGE = """
{M} runs {dir} from {P1} to {P2}.
{M} forms the watershed between the {river} and the {river2}.
The path follows {M} for several kilometres.
{M} is a narrow ridge of rock with steep drops on both sides.
Fighting on {M} lasted for several days.
The highest point of {M} is {P1}.
{M} rises to the {dir} of {city}.
Wind turbines were built along {M} in {year}.
{M} separates the two glaciers.
From {M}, walkers look down on {lake}.
Tunnels were dug into {M} during the war.
The ridge known as {N} continues to {P1}.
"""

_ANY = """
{M} [is a|are a] {kn} in {country}.
{M} [is a|are a] {kn} in {county}, {state}.
{M} [lies|lie] in the {dir} of {country}.
Visitors to {city} often make a trip to {M}.
{M} [was|were] named by {person} in {year}.
{M} [appears|appear] on a stamp issued in {year}.
A photograph of {M} hangs in the entrance hall of {inst}.
{M} [is|are] shown on the earliest maps of {country}.
{person} wrote a guidebook to {M}.
The documentary follows a team of scientists on {M}.
Climate change is affecting {M} faster than expected.
Snow and ice cover {M} for much of the year.
{M} [was|were] the setting for the final scene of the film.
Researchers from {inst} have studied {M} for decades.
The area around {M} is sparsely populated.
{M} can be reached by bus from {city}.
{person} grew up near {M} and later wrote about it.
Few roads lead to {M}.
{M} [lies|lie] close to the border with {country}.
Tourism around {M} grew quickly after the {decade}.
{M} [is|are] mentioned in old chronicles from {country}.
Visitors from {city} can reach {M} in about three hours by car.
{M} [is|are] located near {city}, in {state}.
The region around {M} is known for its cheese.
{M} [is|are] visible from much of {state}.
Little is known about the early history of {M}.
{M} [was|were] hit by a heavy storm on {weekday}.
Guides in {city} offer trips to {M} all year.
{M} [has|have] long attracted artists and writers.
The {nat} government plans to protect {M} as a national park.
According to a survey in {year}, {M} [is|are] larger than previously thought.
The hotel in {city} is named after {M}.
{M} [lies|lie] within {park}.
{M} [is|are] part of {park}.
{park} protects {M} and the surrounding forests.
The stream that drains {M} flows into {lake}.
{person}, a geologist at {inst}, has mapped {M} in detail.
Heavy fog hid {M} from view all day.
In the local language, {N} means "the white one".
{M} [was|were] featured in an advertisement for {company}.
Every summer students from {inst} spend a week on {M}.
{M} [marks|mark] the boundary between {state} and {region}.
Few places in {country} are as remote as {M}.
Last year {n} people had to be rescued from {M}.
We spent three days walking around {M} and it rained every day.
I first saw {M} from the window of a train to {city}.
If the weather holds, we hope to reach {M} by Friday.
Have you ever been to {M}?
The photograph shows {M} at sunrise.
Rescuers searching {M} found the missing walker alive on {weekday}.
After the earthquake of {year}, the road between {city} and {M} was closed for several months.
{M} and {P1} were both described in detail by {person} in a book published in {year}.
On the first day we walked from {city} to a hut below {M}; on the second we crossed the pass.
Born in {city} in {year}, {person} began climbing young and made early ascents of {M} and {P1}.
The line runs along the {river} for most of its length, with {M} in view on the left.
{team} spent two weeks training at altitude near {M} before the season.
The album "{title}" was recorded in a studio in {city}, in sight of {M}.
{org} sponsored the {year} expedition to {M}.
The film "{title}" was shot on location at {M} and in {city}.
{person}, who played for {team}, retired to a farm below {M}.
The {site} lies at the foot of {M}.
From the {site} there is a clear view of {M}.
The road from the {site} to {M} was paved in {year}.
{M} [rises|rise] behind the {site}, {km} km from {city}.
Between the {site} and {M} the valley narrows to a gorge.
"""

_NEGATIVE = """
{city} is a town in {state}.
{city} lies on the {river}, at the foot of the mountains.
The town of {city} was founded in {year}.
{person} was born in {city} in {year}.
{person} served as mayor of {city} from {year} to {year2}.
The {river} flows through {city} before it joins the {river2}.
The {river} rises in the mountains of {region}.
Floods on the {river} damaged houses in {city} last spring.
{lake} is a popular place for swimming in summer.
The hotel overlooks {lake} and the mountains beyond.
{park} covers more than a thousand square kilometres.
{park} was established in {year}.
Visitors to {park} can see bears, elk and wolves.
{company} reported record profits on {weekday}.
{company} has its headquarters in {city}.
The new advertising campaign for {company} was filmed in {city}.
{person} studied at {inst} before moving to {city}.
{inst} opened a new research wing in {year}.
She works at {inst} in {city}.
The shop on {street} sells maps and climbing gear.
The parade moved slowly along {street}.
Police closed {street} after a water main burst.
{region} is known for its mountains, lakes and forests.
The government of {region} announced new rules for hikers.
{other} drew large crowds in its first week.
Tickets for {other} sold out within hours.
The tourist season in {city} reaches its peak in February.
Prices at {company} reached a peak in {year} before falling sharply.
The climbers returned to {city} after three weeks in the mountains.
Snow fell on the mountains around {city} overnight.
From {city} a road winds up into the hills towards {city2}.
The glacier above {city} has shrunk by half since {year}.
The summit meeting in {city} ended without an agreement.
{person} reached the summit of a long career by winning the title in {year}.
The mountain range to the {dir} of {city} is covered with snow for six months of the year.
A ridge of high pressure brought sunshine to {region}.
The ski season in {city} opened a week early.
{person} worked at {company} for twenty years.
{person} and {person2} founded {company} in {year}.
{company} sponsors a cycling team based in {city}.
The team from {city} beat {city2} in the final.
The conference at {inst} was attended by {n} hundred delegates.
{inst} is one of the oldest institutions in {region}.
The mountain village of {city} has fewer than a thousand inhabitants.
Hikers usually spend the night in {city} before heading into the mountains.
The {river} valley is famous for its wines.
Trout fishing on the {river} is best in early summer.
The bridge over the {river} at {city} was rebuilt in {year}.
{lake} freezes over in most winters.
Ferries cross {lake} several times a day.
The shores of {lake} are lined with old villas.
{person} owned a house on {street} in {city}.
The museum on {street} tells the story of the town.
{park} is one of the most visited parks in {region}.
Camping is allowed only at marked sites in {park}.
The trail through {park} passes waterfalls and old mines.
{person} photographed wildlife in {park} for many years.
{person}, a climber from {city}, died in {year}.
{person} is best remembered for an expedition in {year}.
The airport at {city} has flights to {city2} twice a week.
{city} hosted the winter games in {year}.
Heavy snow cut off {city} for several days.
The road from {city} to {city2} climbs through dozens of hairpin bends.
{company} opened a new factory near {city} in {year}.
Shares in {company} fell after the announcement.
{company} has been sold to an investment group.
{region} borders {country} to the {dir}.
The population of {region} grew slowly during the {decade}.
{inst} was founded in {city} in {year}.
{inst} sent a team to the scene of the accident.
The {river} burst its banks near {city}.
{city} is twinned with {city2}.
We drove from {city} to {city2} and stopped at {lake} for lunch.
Is {city} worth visiting in winter?
{person} met {person2} in {city} in {year}.
The mountain hut above {city} is open from June to September.
{person}'s first book was about life in {city}.
{street} runs from the station to the old town of {city}.
The climbing gyms in {city} are busy all winter.
{other} is one of the most popular attractions in {state}.
The water level in {lake} dropped after a dry summer.
An earthquake shook {city} and the surrounding hills on {weekday}.
Ash from a distant eruption delayed flights out of {city}.
{person} painted the peaks above {city} many times.
{person} moved to {city} in {year} to work for {company}.
The {river} and the {river2} meet at {city}.
{city} was the starting point of many expeditions to the high peaks.
{other} was in the news again this week.
The pass above {city} is closed until the snow melts.
Volunteers planted trees along the {river} near {city}.
The {site} was completed in {year}, {km} km {dir} of {city}.
Work on the {site} began in {year} and took {n} years.
The {site} was badly damaged in the earthquake of {year}.
Most visitors to the {site} near {city} come in summer.
The {river} widens into the {site} below {city}.
The {site} and the {site2} are the main sights of {city}.
The road links {city}, {city2} and {city3} with the coast.
Hikers from {city}, {city2} and {city3} met at the hut above {city4}.
"""

_GENERAL = """
{person} scored twice as {team} beat {team2} 3–1 on {weekday}.
{person} joined {team} from {team2} in {year}.
The {year} season ended with {team} in {ord} place, well behind {team2}.
{person} was elected to parliament for {city} in {year}.
{person} served as minister of finance under {person2}.
{org} was founded by {person} in {year}.
{org} moved its headquarters from {city} to {city2} in {year}.
In {year}, {org} bought a controlling stake in {company}.
{person} released the album "{title}" in {year}.
The song "{title}" by {person} reached number {num} in the charts.
{person} starred in "{title}", which was filmed in {city}.
The novel "{title}" by {person} was published in {year}.
{person} studied law at {org} and later taught in {city}.
During the war, {person} commanded the {ord} division near {city}.
The treaty was signed in {city} on {day} {month} {year}.
{person}, the bishop of {city}, died in {year}.
{company} and {org} signed a supply agreement in {month}.
The ship was launched at {city} in {year} and sold to {org} in {year2}.
{person} won the gold medal in the downhill at the {year} games.
{person} finished {ord} in the giant slalom, behind {person2}.
The station at {city} was opened in {year} by {org}.
{person} was appointed coach of {team} in {month} {year}.
{team} play their home games at a stadium in {city}.
{person} was born in {city} to a family of farmers and moved to {city2} as a child.
The festival in {city} attracts more than {num} thousand visitors each year.
{person} is a {nat} painter known for portraits and landscapes.
{person} is a {nat} politician who has been mayor of {city} since {year}.
The museum in {city} holds a large collection of works by {person}.
{org} reported a loss of {num} million dollars for {year}.
{person} and {person2} were married in {city} in {year}.
{person} wrote for {org} before founding a new magazine.
The bridge between {city} and {city2} was designed by {person}.
{person} led the party to victory in the {year} election.
The court in {city} ruled against {company} in {year}.
{person} played {num} matches for {team} before retiring in {year}.
{org} has offices in {city} and {city2}.
The first edition of the race was won by {person} of {team}.
{person} is a professor of physics at {org}.
{person} composed the music for "{title}" ({year}).
The {year} census recorded {num} thousand people in {city}.
The battle of {city} was fought in {month} {year}.
{person} was sentenced to {n} years in prison in {year}.
{region} joined the federation in {year}.
The species was first described by {person} in {year}.
{person} discovered the comet from an observatory near {city} in {year}.
{team} won the cup for the {ord} time in {year}.
{org} closed its factory in {city} in {year}, and {num} hundred workers lost their jobs.
Polls closed at eight in {city}, where {person} was expected to win.
{person} hosted a weekly programme on {org} from {year} to {year2}.
The album was recorded in {city} with the producer {person}.
Trains between {city} and {city2} were cancelled because of the strike.
{person} reached the final of the tournament in {city} in {year}.
{company} was bought by {org} in {year}.
{person} was the first woman to lead {org}.
The tournament was moved from {city} to {city2} at short notice.
{person} climbed to third place in the standings after the race in {city}.
Shares of {company} hit a new peak on {weekday}.
The summit of world leaders was held in {city} in {year}.
{person} reached the top of the charts with "{title}" in {year}.
The programme was broadcast on {org} and repeated on {company}.
{person} ( born {day} {month} {year} ) is a {nat} footballer who plays for {team}.
{person} was a {nat} general who fought at {city} in {year}.
Construction of the cathedral in {city} began in {year} under {person}.
The merger of {org} and {company} was approved in {year}.
{person} founded a school for girls in {city} in the {decade}.
After leaving {team}, {person} signed for {team2} on a free transfer.
{person} won the Nobel Prize in chemistry in {year}.
The opera "{title}" had its premiere in {city} in {year}.
The expedition left {city} in {month} {year} with {num} men and three ships.
{region} is a province of {country} with its capital at {city}.
The {site} was built by {org} in {year}.
{person} was buried near the {site} in {city}.
The {site} appears on the coat of arms of {city}.
The district includes the towns of {city}, {city2}, {city3} and {city4}.
Along its course the {river} passes {city}, {city2} and {city3}.
{person}, {person2} and {person3} were the main speakers at the congress in {city}.
The league was won by {team}, ahead of {team2} and {team3}.
In older sources the town appears as {city}, {city2} or {city3}.
Branches of {org} opened in {city}, {city2} and {city3} in the {decade}.
"""

_DOMAIN = """
The gene {gene} is expressed in the developing heart of the {species}.
Mutations in {gene} and {gene2} were found in patients from {city}.
{gene} binds to {acronym} and regulates the expression of {gene2}.
The enzyme {gene} was first isolated from {species} by {person} in {year}.
Levels of {gene} were higher in the liver than in the {word}.
The protein encoded by {gene} is a member of the {acronym} family.
{species} is a species of moth in the family {family}.
{species} is a plant native to {region2}, where it grows in dry forest.
The frog {species} was described by {surname} in {year}.
The genus {genus} contains {n} species, all found in {country}.
{species} ( {word} ) is cultivated for its seeds and leaves.
The larvae feed on {species} and {species2}.
Local crops include {word}, rice, maize and {species}.
Symptoms of {disease} include fever, rash and a swollen {word}.
{disease} was first reported in {city} in {year}.
The drug {drug} is used to treat {disease} and {disease2}.
{person} performed the first trial of {drug} at {org}.
{band} released their debut album, "{title}", on {label} in {year}.
The line-up included {band}, {band2}, {band3} and {band4}.
The festival featured {band}, {band2}, {person} and {band3}.
{band} toured with {band2} in support of "{title}".
The single "{title}" was produced by {person} for {label}.
{person} left {band} in {year} and formed {band2}.
The {product} uses a {product2} processor made by {company}.
The {product} was replaced by the {product2} in {year}.
{company} sold {num} thousand units of the {product} in its first year.
The {acronym} standard is supported by the {product} and the {product2}.
Version {num} of {software} added support for {acronym}.
{software} is a file system developed by {person} at {company}.
The aircraft was a {aircraft} of the {nat} air force.
The airline {company} flew the {aircraft} between {city} and {city2}.
{person} flew a {aircraft} from {city} to {city2} in {year}.
{star} is a star in the constellation {constellation}.
The planet {star} b orbits its star every {num} days.
{person} observed {star} from {city} in {year}.
In {language}, the word "{word}" means "black water".
The name comes from the {language} word {word}, "a place of birds".
It is also known as {name} or {name2} in older texts.
The {language} spelling is {word}, while in {language2} it is written {word2}.
{name} is the god of rain in the {nat} religion.
The temple of {name} in {city} was rebuilt in the {decade}.
The {name} dynasty ruled {region} from {year} to {year2}.
{person} was crowned king of {region} at {city} in {year}.
The wine is made from {grape} and {grape2} grapes grown near {city}.
{grape} is a red grape variety grown in {region}.
The dish is made of {word}, flour and butter.
{club} finished {ord} in the {league}, behind {club2}.
{person} scored for {club} against {club2} in the {league}.
{club} won the {league} in {year} under coach {person}.
The {acronym} was founded in {year} with its seat in {city}.
{person} was the chair of {acronym} from {year} to {year2}.
The {ord} congress of the {acronym} was held in {city}.
{company} , {company2} and {company3} bid for the contract.
{person} joined {company} as chief executive in {year}.
The firm {company} was audited by {company2} in {year}.
The ship {name} was sunk off {city} in {month} {year}.
The locomotive {name} was built by {company} in {year}.
{person} painted "{title}" while living in {city}.
The manuscript was copied by {person} at the monastery of {name}.
The poem "{title}" was written by {person} in {language}.
{person} translated the {name} into {language} in {year}.
Early settlers called the area {name}.
{person} , {person2} , {person3} and {person4} were among the founders.
The villages of {city} , {city2} , {city3} and {city4} form the district.
The districts are {city} , {city2} , {city3} , {city4} and {city5}.
The currency was the {word}, divided into {num} {word2}.
The railway from {city} to {city2} was opened by {company} in {year}.
The {name} Act of {year} gave women the vote.
{person} won the {name} Prize for "{title}".
The {name} award went to {person} and {person2}.
The satellite {product} was launched from {city} in {year}.
Patients with {disease} received {drug} or a placebo.
"""

TEMPLATES: dict[str, tuple[str, ...]] = {
    "summit": _lines(_SUMMIT),
    "summit_bare": _lines(_SUMMIT_BARE),
    "volcano": _lines(_VOLCANO),
    "range": _lines(_RANGE),
    "range_bare": _lines(_RANGE_BARE),
    "massif": _lines(_MASSIF),
    "hills": _lines(_HILLS),
    "glacier": _lines(_GLACIER),
    "pass": _lines(_PASS),
    "plateau": _lines(_PLATEAU),
    "ridge": _lines(_RIDGE),
    "any": _lines(_ANY),
    "negative": _lines(_NEGATIVE),
    "general": _lines(_GENERAL),
    "domain": _lines(_DOMAIN),
}
"""Sentence templates by group; ``negative`` (lookalikes in a mountain setting), ``general``
(lookalikes among other proper names: sport, politics, music, business) and ``domain`` (the
proper names and jargon of prose far from mountains: genes, species, bands, products, stars,
languages) have no mountain slot."""

_SLOT = re.compile(r"\{(\w+)\}|\[([^\[\]|]*)\|([^\[\]|]*)\]")
_SECONDARY = re.compile(r"^([PRGS])(\d)$")
_CONTEXT = re.compile(r"^([a-z]+)(\d?)$")
_NOT_BARE = {"mount", "mont", "monte", "mt", "peak", "mountain", "hill", "pic", "piz", "pico"}
_NOT_BARE |= {"cerro", "volcano", "volcán", "ben", "glacier", "pass", "mauna", "sierra"}

P_ANY = 0.25  # share of positives written from the kind-neutral ("any") templates
P_MT = 0.15  # "Mount X" written "Mt. X"
P_LOWER = 0.04  # sentence written all in lower case
P_NEGATIVE_PERSON = 0.35  # a person slot filled from the negatives (else another name)
P_NEGATIVE_CITY = 0.5  # a city slot filled from the negatives (else a town of TOWNS or made up)
P_GENERAL = 0.5  # share of negatives written from the general-topic templates
P_SAME_REGION = 0.85  # secondary mountains from the main mountain's region when there are some
ARTICLE_P = {"glacier": 0.5, "pass": 0.6, "plateau": 0.85, "ridge": 0.5}
MAX_TRIES = 30
# how often a kind-specific group is chosen, relative to the others that fit the kind (a template
# is then drawn uniformly inside the group); groups not listed weigh 1
GROUP_WEIGHT = {"summit_bare": 0.3, "range_bare": 0.3, "massif": 0.4, "hills": 0.5}


NO_MOUNTAIN = ("negative", "general", "domain")  # template groups without a mountain slot
CONTEXT_BASES = {*CONTEXT_KINDS, "country", "state", "org", "team", "title", "site"}
P_DOMAIN = 0.3  # share of negatives written from the domain templates (no lookalike needed)


def _made_up(rng: random.Random) -> str:
    """A made-up proper name from two or three syllables ("Karvelo", "Tsebrek")."""
    word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 2, 3))))
    return word.capitalize()


# Faker locales (Latin script) whose names, towns and firms fill person/city/company slots, so the
# tagger meets Polish, Finnish, Indian, Turkish... names that are not mountains
FAKER_LOCALES: tuple[str, ...] = (
    "en_US", "en_GB", "en_IN", "de_DE", "fr_FR", "es_ES", "pt_BR", "nl_NL", "pl_PL", "sk_SK",
    "cs_CZ", "hr_HR", "sv_SE", "fi_FI", "tr_TR", "da_DK", "hu_HU", "ro_RO", "id_ID", "sl_SI",
)  # fmt: skip
FAKER_PER_LOCALE = 40
P_FAKER = 0.5  # a person, city or company slot filled from the Faker pool (when not a lookalike)
# words that make a name look like a landform: such Faker names are not used
_LANDFORM_WORDS = {
    "mount", "mountain", "mountains", "mt", "hill", "hills", "peak", "ridge", "range", "pass",
    "glacier", "alp", "alps", "alpe", "berg", "monte", "mont", "sierra", "col", "piz", "pic",
    "pico", "vrh", "gora", "góra", "hora", "tepe", "dağ", "dag", "fell", "heights", "summit",
}  # fmt: skip


def faker_pools(seed: int, exclude: Collection[str] = ()) -> dict[str, list[str]]:
    """Person, city, company and surname pools drawn from Faker's locales, deterministically.

    Names with a landform word ("Mountain View", "Hillsboro") and names in ``exclude`` (the
    gazetteer) are left out: they would teach the tagger that a mountain-like name is ``O``.
    """
    from faker import Faker

    exclude = {e.casefold() for e in exclude}
    pools: dict[str, set[str]] = {k: set() for k in ("person", "city", "company", "surname")}
    for i, locale in enumerate(FAKER_LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed * 1000 + i)
        for _ in range(FAKER_PER_LOCALE):
            for kind, make in (
                ("person", fake.name),
                ("city", fake.city),
                ("company", fake.company),
                ("surname", fake.last_name),
            ):
                name = " ".join(make().split())
                words = set(re.findall(r"\w+", name.casefold()))
                if name and not words & _LANDFORM_WORDS and name.casefold() not in exclude:
                    pools[kind].add(name)
    return {kind: sorted(names) for kind, names in pools.items()}


_GREEK = (
    "Alpha",
    "Beta",
    "Gamma",
    "Delta",
    "Epsilon",
    "Zeta",
    "Eta",
    "Theta",
    "Iota",
    "Kappa",
    "Lambda",
    "Mu",
    "Nu",
    "Xi",
    "Pi",
    "Rho",
    "Sigma",
    "Tau",
    "Upsilon",
    "Phi",
    "Chi",
    "Psi",
)
_ACCENTED = ("â", "é", "ø", "ü", "š", "ī", "ō", "ñ", "ç", "ă")
_LANGUAGES = (
    "Cree",
    "Basque",
    "Tamil",
    "Welsh",
    "Quechua",
    "Hausa",
    "Maori",
    "Latvian",
    "Sami",
    "Yoruba",
    "Occitan",
    "Tagalog",
    "Frisian",
    "Kurdish",
    "Ainu",
    "Navajo",
)
_DRUG_ENDINGS = ("mab", "vir", "pril", "statin", "azole", "cillin", "olol", "tinib", "parin")
_TAXON_ENDINGS = ("us", "a", "ia", "ella", "opsis", "ium", "ops", "odon")
_EPITHET_ENDINGS = ("ensis", "ii", "ata", "us", "ica", "oides", "ifolia", "a")
_PRODUCT_FORMS = ("{X} {L}{d}", "{L}{d}", "{L}{L}-{d}", "{X} {d}0", "{X} {L}-{d}{d}", "{X} Mk {r}")
_LEAGUE_FORMS = ("{X} League", "Premier Division", "{L}{L}-liiga", "{X} Cup", "Liga {X}")
_CLUB_FORMS = ("{X} SK", "{X} FC", "FC {X}", "IF {X}", "{X} AC", "{X} United", "SV {X}")


def _word(rng: random.Random, accents: bool = True) -> str:
    """A made-up lower-case word, sometimes with a diacritic ("tsebrâk")."""
    word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 3, 3))))
    if accents and rng.random() < 0.4:
        i = rng.randrange(len(word))
        word = word[:i] + rng.choice(_ACCENTED) + word[i + 1 :]
    return word


def _domain_value(base: str, rng: random.Random, pools: dict[str, list[str]]) -> str:
    """A value for a ``domain`` template slot (all of them ``O``)."""
    letter = lambda: rng.choice("ABCDEFGHKLMNPRSTVXZ")  # noqa: E731
    name = lambda: rng.choice(pools["surname"]) if rng.random() < 0.5 else _made_up(rng)  # noqa: E731

    def form(forms: tuple[str, ...], x: str | None = None) -> str:
        """A form with {X} a name (``x``, else a surname or made-up), {L} letters, {d} digits."""
        out = rng.choice(forms).replace("{X}", name() if x is None else x)
        for key, fill in (("{L}", letter), ("{d}", lambda: str(rng.randint(1, 9)))):
            while key in out:
                out = out.replace(key, fill(), 1)
        return out.replace("{r}", rng.choice(("II", "III", "IV")))

    if base == "genus":
        return _made_up(rng) + rng.choice(_TAXON_ENDINGS)
    if base == "species":
        epithet = rng.choice((_word(rng, False), rng.choice(pools["surname"]).casefold()))
        return f"{_domain_value('genus', rng, pools)} {epithet}{rng.choice(_EPITHET_ENDINGS)}"
    if base == "family":
        return _made_up(rng) + "idae"
    if base == "gene":
        return rng.choice(
            (
                "".join(letter() for _ in range(rng.randint(2, 4))) + str(rng.randint(1, 12)),
                f"{_made_up(rng)} {rng.choice(('receptor', 'kinase'))} {rng.randint(1, 4)}",
                _word(rng, False)[:3] + "-" + str(rng.randint(1, 9)),
                "".join(letter() for _ in range(3)),
            )
        )
    if base == "acronym":
        return "".join(letter() for _ in range(rng.randint(2, 4)))
    if base == "disease":
        acronym = "".join(letter() for _ in range(4))
        return rng.choice(
            (f"{name()} syndrome", f"{name()} disease", _word(rng, False) + "itis", acronym)
        )
    if base == "drug":
        return _word(rng, False) + rng.choice(_DRUG_ENDINGS)
    if base == "band":
        pick = rng.random()
        if pick < 0.35:
            return "The " + " ".join(rng.sample(TITLE_WORDS, 2))
        if pick < 0.6:
            return rng.choice(pools["person"])
        if pick < 0.8:
            return _made_up(rng)
        return " ".join(rng.sample(TITLE_WORDS, rng.randint(1, 2))) + " " + _made_up(rng)
    if base == "label":
        company = rng.choice(pools["company"])
        return rng.choice((f"{name()} Records", f"{_made_up(rng)} Music", company))
    if base in ("product", "aircraft"):
        return form(_PRODUCT_FORMS)
    if base == "software":
        return _made_up(rng) + rng.choice(("FS", "OS", "DB", "", "Script"))
    if base == "star":
        return f"{rng.choice(_GREEK)} {_made_up(rng)}{rng.choice(('ae', 'is', 'i', 'us'))}"
    if base == "constellation":
        return _made_up(rng) + rng.choice(("a", "us", "is"))
    if base == "language":
        return rng.choice(_LANGUAGES)
    if base == "word":
        return _word(rng)
    if base == "name":
        return name()
    if base == "grape":
        return _made_up(rng) + rng.choice(("", "el", "ano", "ot"))
    if base == "club":
        return form(_CLUB_FORMS, rng.choice(pools["city"]))
    if base == "league":
        return form(_LEAGUE_FORMS)
    if base == "surname":
        return rng.choice(pools["surname"])
    raise KeyError(base)


DOMAIN_BASES = {
    "genus", "species", "family", "gene", "acronym", "disease", "drug", "band", "label", "product",
    "aircraft", "software", "star", "constellation", "language", "word", "name", "grape", "club",
    "league", "surname",
}  # fmt: skip
SLOT_BASES = CONTEXT_BASES | DOMAIN_BASES  # the named slots a template may hold


def _plural(entry: Entry) -> bool:
    if entry.kind not in ("range", "hills", "massif"):
        return False
    last = entry.name.split()[-1].casefold()
    return last.endswith("s") and not last.endswith(("ss", "us")) and last not in _SINGULAR_S


def _eligible(group: str, entry: Entry) -> bool:
    words = [w.casefold().rstrip(".") for w in entry.name.split()]
    if group == "summit_bare":  # "the Pilsko mountain", "the Speikboden massif": one word only
        return len(words) == 1 and not _NOT_BARE & set(words)
    if group == "range_bare":
        return not _RANGE_WORDS & set(words) and not _plural(entry)
    return True


def _needs(template: str) -> set[str]:
    """The secondary mountain pools (P, R, G, S) a template needs."""
    return {m.group(1) for s in _SLOT.findall(template) if (m := _SECONDARY.match(s[0]))}


def template_count() -> dict[str, int]:
    """Distinct templates per group (``positive``: all the groups with a mountain slot)."""
    counts = {group: len(set(t)) for group, t in TEMPLATES.items()}
    counts["positive"] = len({t for g, ts in TEMPLATES.items() if g not in NO_MOUNTAIN for t in ts})
    return counts


class _Cycle:
    """Entries in a seeded random order, reshuffled each time the list is used up."""

    def __init__(self, entries: list[Entry], rng: random.Random) -> None:
        self.entries, self.rng, self.order, self.pos = list(entries), rng, [], 0

    def next(self, avoid: Collection[str] = ()) -> Entry | None:
        for _ in range(len(self.entries) + 1):
            if self.pos >= len(self.order):
                self.order = self.rng.sample(self.entries, len(self.entries))
                self.pos = 0
            entry = self.order[self.pos]
            self.pos += 1
            if entry.name not in avoid:
                return entry
        return None


class _Generator:
    def __init__(self, gazetteer: list[Entry], negatives: list[Entry], seed: int) -> None:
        self.rng = random.Random(seed)
        self.gazetteer = gazetteer
        self.primary = _Cycle(gazetteer, self.rng)
        self.pools: dict[tuple[str, str], _Cycle] = {}
        for pool, kinds in SECONDARY_KINDS.items():
            members = [e for e in gazetteer if e.kind in kinds]
            self.pools[pool, ""] = _Cycle(members, self.rng)
            for region in sorted({e.region for e in members if e.region}):
                same = [e for e in members if e.region == region]
                if len(same) > 1:
                    self.pools[pool, region] = _Cycle(same, self.rng)
        self.context: dict[str, list[str]] = collections.defaultdict(list)
        for e in negatives:
            self.context[e.kind].append(e.name)
        self.negative_names = {e.name for e in negatives}
        self.names = faker_pools(seed, exclude={e.name for e in gazetteer})
        self.templates = [
            (f"{group}:{i}", group, t, _needs(t))
            for group, ts in TEMPLATES.items()
            for i, t in enumerate(ts)
        ]

    # -- slot fillers ---------------------------------------------------------------------------

    def _display(self, entry: Entry) -> tuple[str, str]:
        """(article, name) as the entry is written in this sentence."""
        rng, name, kind = self.rng, entry.name, entry.kind
        if name.startswith("Mount ") and rng.random() < P_MT:
            name = "Mt. " + name[len("Mount ") :]
        if kind in ("range", "hills", "massif"):
            return "the ", name
        if kind in ARTICLE_P:
            return ("the " if rng.random() < ARTICLE_P[kind] else ""), name
        single = " " not in name
        if single and name.casefold().endswith(_SUMMIT_SUFFIXES) and rng.random() < 0.75:
            return "the ", name
        return "", name

    def _number(self, slot: str, state: dict) -> str:
        rng = self.rng
        if slot in ("m", "ft"):
            if "_m" not in state:
                state["_m"] = rng.randint(600, 8850)
            value = state["_m"] if slot == "m" else round(state["_m"] * 3.28084)
            return f"{value:,}" if value >= 1000 and rng.random() < 0.6 else str(value)
        if slot == "elev":
            m, ft = self._number("m", state), self._number("ft", state)
            return rng.choices(
                [f"({m} m)", f"({m} metres)", f"({m} m / {ft} ft)", f"({ft} ft)", "( )"],
                weights=[40, 10, 12, 13, 25],
            )[0]
        if slot == "year":
            return str(state.setdefault("_year", rng.randint(1786, 2022)))
        if slot == "year2":
            return str(int(self._number("year", state)) + rng.randint(1, 30))
        simple = {
            "km": lambda: str(rng.randint(2, 60)),
            "dist": lambda: str(rng.randrange(80, 2500, 10)),
            "area": lambda: str(rng.randrange(20, 900, 5)),
            "decade": lambda: f"{rng.randrange(1780, 2000, 10)}s",
            "day": lambda: str(rng.randint(1, 28)),
            "age": lambda: str(rng.randint(12, 78)),
            "mil": lambda: rng.choice(("2", "5", "10", "15", "40", "65", "300")),
            "month": lambda: rng.choice(MONTHS),
            "weekday": lambda: rng.choice(("Monday", "Tuesday", "Wednesday", "Thursday")),
            "n": lambda: rng.choice(SMALL_NUMBERS),
            "ord": lambda: rng.choice(ORDINALS),
            "dir": lambda: rng.choice(DIRECTIONS),
            "nat": lambda: rng.choice(NATIONALITIES),
            "num": lambda: str(rng.randint(2, 99)),
        }
        if slot not in simple:
            raise KeyError(slot)
        return simple[slot]()

    def _context(self, base: str) -> tuple[str, bool]:
        """(value, from the negatives file) for a context slot."""
        rng = self.rng
        if base == "country":
            if self.context["region"] and rng.random() < 0.15:
                return rng.choice(self.context["region"]), True
            return rng.choice(COUNTRIES), False
        if base == "state":
            if self.context["region"] and rng.random() < 0.2:
                return rng.choice(self.context["region"]), True
            return rng.choice(STATES), False
        if base == "county":
            return rng.choice(COUNTIES), False
        if base in DOMAIN_BASES:
            return _domain_value(base, rng, self.names), False
        if base in ("person", "city", "company") and self.names[base] and rng.random() < P_FAKER:
            return rng.choice(self.names[base]), False
        if base == "person" and (not self.context["person"] or rng.random() >= P_NEGATIVE_PERSON):
            first = rng.choice(FIRST_NAMES + MORE_FIRST_NAMES)
            last = rng.choice(SURNAMES + MORE_SURNAMES) if rng.random() < 0.7 else _made_up(rng)
            return f"{first} {last}", False
        if base == "city" and (not self.context["city"] or rng.random() >= P_NEGATIVE_CITY):
            return (rng.choice(TOWNS) if rng.random() < 0.6 else _made_up(rng)), False
        if base == "river" and rng.random() < 0.25:
            return f"{_made_up(rng)} River", False
        if base in ("org", "team"):
            forms = ORG_FORMS if base == "org" else TEAM_FORMS
            pick = rng.random()
            if base == "org" and self.context["company"] and pick < 0.2:
                return rng.choice(self.context["company"]), True
            if self.context["city"] and pick < 0.35:
                return rng.choice(forms).replace("{X}", rng.choice(self.context["city"])), True
            x = rng.choice(TOWNS) if pick < 0.65 else _made_up(rng)
            return rng.choice(forms).replace("{X}", x), False
        if base == "site":
            pick = rng.random()
            if self.context["city"] and pick < 0.2:
                return rng.choice(SITE_FORMS).replace("{X}", rng.choice(self.context["city"])), True
            x = rng.choice(TOWNS) if pick < 0.55 else _made_up(rng)
            return rng.choice(SITE_FORMS).replace("{X}", x), False
        if base == "title":
            words = rng.sample(TITLE_WORDS, rng.randint(1, 3))
            return " ".join(words if len(words) == 1 else ["The", *words]), False
        kind = CONTEXT_KINDS[base]
        if not self.context[kind]:
            raise LookupError(kind)
        return rng.choice(self.context[kind]), True

    # -- one sentence ---------------------------------------------------------------------------

    def render(
        self, template: str, primary: Entry | None, need_lookalike: bool = True
    ) -> tuple[Sentence, list[str]] | None:
        """Fill, tokenise and tag one template; None when the fill is unusable.

        A sentence without a mountain must hold a lookalike from the negatives file unless
        ``need_lookalike`` is false (the ``domain`` templates).
        """
        rng = self.rng
        state: dict = {}
        used: dict[str, tuple[str, str, Entry]] = {}  # mountain slot -> (article, name, entry)
        avoid = {primary.name} if primary else set()
        pieces: list[str] = []
        spans: list[tuple[int, int, str]] = []  # (start, end, "m" | "c")
        pos = 0
        lookalike = False
        for m in _SLOT.finditer(template):
            pieces.append(template[pos : m.start()])
            pos = m.end()
            offset = sum(map(len, pieces))
            if m.group(1) is None:  # [singular|plural]
                plural = primary is not None and _plural(primary)
                pieces.append(m.group(3) if plural else m.group(2))
                continue
            slot = m.group(1)
            sec = _SECONDARY.match(slot)
            if slot in ("M", "N", "Mpos") or sec:
                key = "M" if slot in ("M", "N", "Mpos") else slot
                if key not in used:
                    if key == "M":
                        entry = primary
                    else:
                        region = primary.region if primary else ""
                        pool = self.pools.get((sec.group(1), region))
                        if pool is None or rng.random() >= P_SAME_REGION:
                            pool = self.pools[sec.group(1), ""]
                        entry = pool.next(avoid) or self.pools[sec.group(1), ""].next(avoid)
                    if entry is None:
                        return None
                    avoid.add(entry.name)
                    used[key] = (*self._display(entry), entry)
                article, name, _ = used[key]
                if slot == "N":
                    article = ""
                suffix = ("'" if name.endswith("s") else "'s") if slot == "Mpos" else ""
                pieces.append(article + name + suffix)
                start = offset + len(article)
                spans.append((start, start + len(name), "m"))
                continue
            if slot == "kn":
                pieces.append(KIND_NOUN[primary.kind] if primary else "mountain")
                continue
            ctx = _CONTEXT.match(slot)
            if ctx and ctx.group(1) in SLOT_BASES:
                if slot not in state:
                    taken = {v for k, v in state.items() if k.startswith(ctx.group(1))}
                    for _ in range(10):
                        value, from_neg = self._context(ctx.group(1))
                        if value not in taken:
                            break
                    state[slot] = value
                    lookalike |= from_neg
                pieces.append(state[slot])
                spans.append((offset, offset + len(state[slot]), "c"))
                continue
            if slot == "county":
                pieces.append(state.setdefault(slot, self._context("county")[0]))
                spans.append((offset, offset + len(state[slot]), "c"))
                continue
            pieces.append(self._number(slot, state))
        pieces.append(template[pos:])
        text = "".join(pieces)
        if primary is None and need_lookalike and not lookalike:
            return None
        text = text[0].upper() + text[1:]
        if rng.random() < P_LOWER and len(text.lower()) == len(text):
            text = text.lower()
        sentence = self._tag(text, spans, primary)
        return (sentence, [e.name for _, _, e in used.values()]) if sentence else None

    @staticmethod
    def _tag(
        text: str, spans: list[tuple[int, int, str]], primary: Entry | None
    ) -> Sentence | None:
        triples = tokenize(text)
        tokens = [t for t, _, _ in triples]
        starts = {s: i for i, (_, s, _) in enumerate(triples)}
        ends = {e: i for i, (_, _, e) in enumerate(triples)}
        token_spans = []
        for s, e, role in spans:
            if s not in starts or e not in ends:
                return None  # the name does not fall on token boundaries
            token_spans.append((starts[s], ends[e] + 1, role))
        tags = ["O"] * len(tokens)
        for a, b, role in token_spans:
            if role == "m":
                for i, t in enumerate(tag_span(tokens, tokens[a:b])):
                    if t != "O":
                        tags[i] = t
        want = sorted({(a, b) for a, b, role in token_spans if role == "m"})
        if sorted(entities(tags)) != want:
            return None  # a name inside another name or in the template's own words
        if any(t != "O" for a, b, role in token_spans if role == "c" for t in tags[a:b]):
            return None  # a context name (a lookalike) would be tagged
        return Sentence("", tokens, tags, "template", primary.name if primary else None)


def generate_template_dataset(
    gazetteer: str | Path,
    negatives: str | Path,
    n_sentences: int,
    negative_frac: float,
    seed: int,
    join_frac: float = 0.0,
) -> tuple[list[Sentence], dict]:
    """Write ``n_sentences`` tagged sentences from the templates.

    Positives draw their main mountain from the gazetteer without repetition until every name
    has been used (then a new shuffled round starts); ``round(n_sentences * negative_frac)``
    sentences are hard negatives: lookalike names from the negatives file and no mountain, all
    ``O``. Identical token sequences are written once. With ``join_frac`` > 0, that share of
    the positives (as far as negatives last) is joined with one negative into a single longer
    example (see :func:`join_sentences`). Deterministic for a seed.

    Returns:
        The sentences (ids ``tpl-000001``...) and stats: ``sentences``, ``positives``,
        ``negatives``, ``joined``, ``entities``, ``distinct_mountains``, ``templates_used``,
        ``per_kind``
        (positives by the main mountain's kind), ``tokens``, plus ``per_template_group`` and
        the input sizes.

    Raises:
        DatasetError: a malformed gazetteer or negatives file.
        ValueError: ``n_sentences < 0``, ``negative_frac`` outside ``[0, 1)`` or ``join_frac``
            outside ``[0, 1]``.
    """
    if n_sentences < 0:
        raise ValueError(f"n_sentences must be >= 0, got {n_sentences}")
    if not 0 <= negative_frac < 1:
        raise ValueError(f"negative_frac must be in [0, 1), got {negative_frac}")
    if not 0 <= join_frac <= 1:
        raise ValueError(f"join_frac must be in [0, 1], got {join_frac}")
    gaz = read_gazetteer(gazetteer)
    neg_all = read_negatives(negatives)
    gaz_names = {e.name.casefold() for e in gaz}
    neg = [e for e in neg_all if e.name.casefold() not in gaz_names]
    if len(neg) < len(neg_all):
        dropped = sorted(e.name for e in neg_all if e.name.casefold() in gaz_names)
        log.warning("%d negatives are gazetteer names and are not used: %s", len(dropped), dropped)
    gen = _Generator(gaz, neg, seed)
    rng = gen.rng
    n_neg = round(n_sentences * negative_frac)
    plan = [True] * n_neg + [False] * (n_sentences - n_neg)
    rng.shuffle(plan)
    by_group: dict[str, list] = collections.defaultdict(list)
    for tpl in gen.templates:
        by_group[tpl[1]].append(tpl)
    have_pool = {p for (p, region), c in gen.pools.items() if not region and c.entries}

    def usable(tpls: list) -> list:
        return [t for t in tpls if t[3] <= have_pool]

    sentences: list[Sentence] = []
    seen: set[tuple[str, ...]] = set()
    used_templates: set[str] = set()
    per_group: collections.Counter[str] = collections.Counter()
    mountains: set[str] = set()
    per_kind: collections.Counter[str] = collections.Counter()
    failed = 0
    for negative in plan:
        primary = None if negative else gen.primary.next()
        done = False
        for attempt in range(MAX_TRIES):
            if negative:
                pick = rng.random()
                if pick < P_DOMAIN and by_group["domain"]:
                    choices = by_group["domain"]
                else:
                    choices = by_group["general" if rng.random() < P_GENERAL else "negative"]
            else:
                if attempt and attempt % 10 == 0:
                    primary = gen.primary.next()
                groups = [
                    g
                    for g in KIND_GROUPS[primary.kind]
                    if _eligible(g, primary) and usable(by_group[g])
                ]
                choices = usable(by_group["any"])
                if groups and rng.random() >= P_ANY:
                    weights = [GROUP_WEIGHT.get(g, 1.0) for g in groups]
                    choices = usable(by_group[rng.choices(groups, weights)[0]])
            tid, group, template, _ = rng.choice(choices)
            result = gen.render(template, primary, need_lookalike=group != "domain")
            if result is None:
                continue
            sentence, names = result
            key = tuple(sentence.tokens)
            if key in seen:
                continue
            seen.add(key)
            sentences.append(sentence)
            used_templates.add(tid)
            per_group[group] += 1
            mountains.update(names)
            if primary is not None:
                per_kind[primary.kind] += 1
            done = True
            break
        failed += not done
    if failed:
        log.warning("%d of %d sentences could not be written (duplicates)", failed, n_sentences)
    sentences, joined = join_sentences(sentences, join_frac, rng)
    for i, s in enumerate(sentences, start=1):
        s.id = f"tpl-{i:06d}"
    n_negatives = sum(s.mountain is None for s in sentences)
    stats = {
        "sentences": len(sentences),
        "positives": len(sentences) - n_negatives,
        "negatives": n_negatives,
        "joined": joined,
        "entities": sum(len(entities(s.tags)) for s in sentences),
        "distinct_mountains": len(mountains),
        "templates_used": len(used_templates),
        "per_kind": dict(sorted(per_kind.items())),
        "per_template_group": dict(sorted(per_group.items())),
        "tokens": sum(len(s.tokens) for s in sentences),
        "gazetteer_names": len(gaz),
        "negative_names": len(neg),
        "templates_available": template_count()["positive"],
    }
    return sentences, stats


def join_sentences(
    sentences: list[Sentence], frac: float, rng: random.Random
) -> tuple[list[Sentence], int]:
    """Join a share of the positive sentences with one negative sentence each.

    Real prose runs longer than one template and mixes mountains with towns, people and rivers
    in one sentence; a joined example gives the model that context. ``round(frac * positives)``
    positives (at most as many as there are negatives) are drawn; each is joined, in random
    order, with a distinct negative, which is then no longer a sentence of its own. The joined
    example keeps the positive's ``mountain``, so the split by mountain stays clean. Order of
    the list is kept (the joined example takes the positive's place).

    Returns:
        The new list and the number of joined examples.
    """
    positives = [i for i, s in enumerate(sentences) if s.mountain is not None]
    negatives = [i for i, s in enumerate(sentences) if s.mountain is None]
    n = min(round(frac * len(positives)), len(negatives))
    if n == 0:
        return sentences, 0
    chosen = rng.sample(positives, n)
    partners = rng.sample(negatives, n)
    absorbed = set(partners)
    joined = {}
    for i, j in zip(chosen, partners, strict=True):
        pos, neg = sentences[i], sentences[j]
        first, second = (pos, neg) if rng.random() < 0.5 else (neg, pos)
        joined[i] = Sentence(
            pos.id,
            first.tokens + second.tokens,
            first.tags + second.tags,
            pos.source,
            pos.mountain,
        )
    out = [joined.get(i, s) for i, s in enumerate(sentences) if i not in absorbed]
    return out, n
