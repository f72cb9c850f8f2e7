"""Generated demo articles: plausible, distinct news pages from templates, for load and end-to-end runs.

Each article draws from its own `random.Random(f"{seed}:{index}")`, so article i never depends on how
many articles were asked for. Every article carries a unique reference number in its text, and picks
its sentences, their order and their fillers at random, so no two are exact or near duplicates.
The vocabulary never uses the words of the demo alert phrase (checked by the corpus tests).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from newsflow_devtools.demo.corpus import Block, DemoArticle, DemoFeed, Figure, slugify

TOWNS = [
    "Brenmouth",
    "Asterby",
    "Kellen Bay",
    "Port Ivo",
    "Malvik",
    "Harrowgate",
    "Lindholm",
    "Velden",
    "San Telmo",
    "Östervang",
    "Corrin",
    "Dunmere",
    "Alsford",
    "Rivena",
    "Tollby",
    "Marrow Hill",
    "Eskdale",
    "Noria",
    "Glenfar",
    "Saltcombe",
    "Varnaby",
    "Hollin",
    "Quarry End",
    "Westwick",
]
FIRST = [
    "Anna",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Elif",
    "Farid",
    "Greta",
    "Hamza",
    "Ines",
    "Jonas",
    "Kaito",
    "Lena",
    "Mateo",
    "Nadia",
    "Oskar",
    "Paula",
    "Quentin",
    "Rosa",
    "Stefan",
    "Tara",
    "Umar",
    "Vera",
    "Wim",
    "Yara",
    "Zofia",
    "Aleksander",
    "Bea",
    "Cyril",
    "Dalia",
    "Emeka",
]
LAST = [
    "Abbott",
    "Bergström",
    "Castell",
    "Dunn",
    "Eriksen",
    "Fontaine",
    "Grieve",
    "Halloran",
    "Ibarra",
    "Jansen",
    "Kowal",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quist",
    "Rahman",
    "Sorensen",
    "Takács",
    "Ulloa",
    "Varga",
    "Whitlock",
    "Yilmaz",
    "Zeller",
    "Amari",
    "Brandt",
]
ROLES = [
    "a spokesperson for the council",
    "a local business owner",
    "an economist at the regional university",
    "the project's lead engineer",
    "a resident of the area for thirty years",
    "a union representative",
    "the mayor's deputy",
    "a researcher who studies the sector",
    "the chair of the residents' association",
    "a teacher at the town's secondary school",
    "the head of the chamber of commerce",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

# topic -> section, title templates, sentence pool, sub-headings, quotes, figure captions.
# Fillers: {town} {town2} {name} {name2} {role} {n} {m} {pct} {year} {day} {ref} {thing}
TOPICS: dict[str, dict] = {
    "council": {
        "section": "Local",
        "things": [
            "a new cycle bridge",
            "the harbour promenade",
            "a public swimming pool",
            "the old market hall",
            "a district heating network",
            "a youth centre",
            "the bus station",
            "a community garden",
        ],
        "titles": [
            "{town} council approves plans for {thing}",
            "Residents of {town} divided over {thing}",
            "{town} to spend {n} million on {thing}",
            "Work on {thing} in {town} to start in {year}",
        ],
        "sentences": [
            "Councillors in {town} voted {n} to {m} on {day} to go ahead with {thing}.",
            "The scheme, reference {ref} in the council's planning register, has been debated for {m} years.",
            "Supporters say {thing} will bring visitors back to the centre of {town}.",
            "Opponents have collected {n}00 signatures asking for a public consultation first.",
            "The estimated cost has risen by {pct} percent since the first plans were drawn up.",
            "Neighbouring {town2} finished a similar project last year, slightly under budget.",
            "Construction is expected to take {m} years, with the first phase opening in {year}.",
            "The council said local firms would be invited to bid for most of the work.",
            "A public exhibition of the designs will be held in the town library next month.",
            "Traffic will be diverted around the site during the busiest phase of construction.",
            "The regional government has promised to cover {pct} percent of the cost.",
            "Council officers said the maintenance costs had been included in the long-term budget.",
        ],
        "subheads": ["What happens next", "The cost", "Local reaction", "A long debate"],
        "quotes": [
            "We have talked about this for long enough; now we have to deliver it.",
            "Nobody asked the people who actually live next to the site.",
            "It is a good plan, but the numbers have to be watched very closely.",
        ],
        "captions": ["An artist's impression of {thing} in {town}.", "The site in {town} where {thing} will be built."],
    },
    "economy": {
        "section": "Business",
        "things": [
            "furniture maker",
            "dairy cooperative",
            "software company",
            "regional airline",
            "brewery",
            "shipping agent",
            "textile mill",
            "machine-tool maker",
            "seed company",
        ],
        "titles": [
            "{town} {thing} reports {pct} percent rise in sales",
            "{town} {thing} to hire {n}0 workers as orders grow",
            "Profits fall at {town} {thing} as costs climb",
            "{town} {thing} opens a second plant in {town2}",
        ],
        "sentences": [
            "The {thing}, based in {town}, reported revenue of {n}.{m} million for the year, filing {ref}.",
            "Sales rose by {pct} percent, driven by exports to neighbouring countries.",
            "Chief executive {name} said energy costs remained the biggest uncertainty.",
            "The company employs {n}0 people in {town} and {m}0 more in {town2}.",
            "Analysts had expected slower growth after a weak first quarter.",
            "The firm plans to invest {n} million in new equipment over the next {m} years.",
            "Shares in the company rose {m} percent in early trading on {day}.",
            "Order books are full until the middle of {year}, the company said.",
            "A shortage of skilled workers has delayed the expansion by several months.",
            "The company said it would pay a dividend for the first time in {m} years.",
            "Competition from larger rivals has squeezed margins across the sector.",
            "Its largest customer accounts for about {pct} percent of revenue.",
        ],
        "subheads": ["The outlook", "Costs and margins", "New jobs", "What analysts say"],
        "quotes": [
            "We are cautious, but the orders are there.",
            "Every year the paperwork grows faster than the business.",
            "Our people are the reason we can grow at all.",
        ],
        "captions": ["The production floor of the {thing} in {town}.", "Workers at the {thing}'s {town} plant."],
    },
    "science": {
        "section": "Science",
        "things": [
            "soil bacteria",
            "bumblebees",
            "river otters",
            "lichens",
            "night-flying moths",
            "seagrass meadows",
            "bats",
            "peat bogs",
            "migrating eels",
            "mountain hares",
        ],
        "titles": [
            "Study finds {thing} near {town} are recovering faster than expected",
            "Researchers track {thing} across {n} sites in the north",
            "Decline of {thing} slowed by restored habitats, survey says",
            "University of {town} team maps {thing} with new sensors",
        ],
        "sentences": [
            "A team from the University of {town} studied {thing} at {n} sites over {m} years.",
            "The results, published under study number {ref}, surprised the researchers.",
            "Populations grew by {pct} percent where farmers left wider field margins.",
            "Lead author {name} said the method could be repeated by volunteers.",
            "The researchers used small sensors that record temperature and humidity every hour.",
            "Sites near {town2} showed the clearest change after the wetlands were restored.",
            "Funding for the study came from a national biodiversity programme.",
            "The authors caution that {m} years is a short time in the life of an ecosystem.",
            "Similar surveys abroad have found the same pattern, the paper notes.",
            "The team plans to extend the survey to the southern valleys in {year}.",
            "Data from the project will be published openly for other researchers.",
            "Local landowners helped by giving access to private woodland and meadows.",
        ],
        "subheads": ["How the study worked", "What it means", "Next steps", "A cautious reading"],
        "quotes": [
            "Nature can come back quickly if we give it a little room.",
            "We counted more than we dared to hope for.",
            "One good year is not a trend, but several are.",
        ],
        "captions": [
            "Researchers at one of the survey sites near {town}.",
            "A field station used in the study of {thing}.",
        ],
    },
    "sport": {
        "section": "Sport",
        "things": ["handball", "basketball", "ice hockey", "volleyball", "rugby", "water polo", "netball"],
        "titles": [
            "{town} beat {town2} {n}-{m} in the {thing} league",
            "{town} {thing} team climbs to second after away win",
            "Late comeback keeps {town} in the {thing} play-off race",
            "{name} signs a new contract with {town} {thing} club",
        ],
        "sentences": [
            "{town} beat {town2} {n}-{m} on {day} evening in front of a sold-out home crowd.",
            "It was the team's {m}th win of the season, match report {ref}.",
            "{name} was the standout player, scoring {n} times.",
            "Coach {name2} praised the team's defence in the second half.",
            "The result lifts {town} to within {m} points of the top of the {thing} table.",
            "{town2} had led for most of the first half before a string of errors.",
            "Attendance has risen by {pct} percent since the club moved to its new arena.",
            "The next match is away to a side that has not lost at home this season.",
            "Two players missed the game with minor injuries but should return next week.",
            "Supporters travelled from {town2} on a special train chartered by the club.",
            "The club's youth academy has produced four of the current starting players.",
            "Ticket sales for the play-offs open on the club's website next week.",
        ],
        "subheads": ["Turning point", "The table", "What the coach said", "Looking ahead"],
        "quotes": [
            "We kept our heads when it mattered.",
            "The crowd carried us through the last ten minutes.",
            "We have to be better away from home.",
        ],
        "captions": ["{name} in action for {town} against {town2}.", "Players from {town} celebrate a late goal."],
    },
    "weather": {
        "section": "Environment",
        "things": ["heavy rain", "early frost", "strong winds", "a dry spell", "fog", "snowfall", "hail"],
        "titles": [
            "Forecasters warn of {thing} in the {town} area",
            "{thing} disrupts trains between {town} and {town2}",
            "Farmers near {town} count the cost of {thing}",
            "Record {thing} measured at {town} weather station",
        ],
        "sentences": [
            "The weather service issued a yellow warning for {thing} around {town} from {day}.",
            "The station in {town} recorded the highest reading in {m}0 years, bulletin {ref}.",
            "Trains between {town} and {town2} ran at reduced speed for most of the day.",
            "Farmers said {pct} percent of the late harvest could be affected.",
            "Forecaster {name} said conditions should improve by the end of the week.",
            "Schools in {town2} opened two hours late as a precaution.",
            "Drivers were advised to allow extra time and to check conditions before setting out.",
            "Emergency services answered {n}0 calls, most of them about fallen branches.",
            "The national road agency had salt spreaders and crews on standby overnight.",
            "The season so far has been {pct} percent wetter than the long-term average.",
            "Ferries to the islands were cancelled until the sea calmed down.",
            "Power was briefly cut to {n}00 homes on the edge of {town}.",
        ],
        "subheads": ["The forecast", "Travel", "On the farms", "Records"],
        "quotes": [
            "We have not seen anything like this since I was a child.",
            "The ground is already saturated; every extra millimetre counts.",
            "Take it slowly on the roads tonight.",
        ],
        "captions": ["Conditions on the main road outside {town} on {day}.", "The {town} weather station."],
    },
    "culture": {
        "section": "Culture",
        "things": [
            "jazz festival",
            "photography exhibition",
            "folk music weekend",
            "book fair",
            "theatre season",
            "open-air cinema",
            "craft market",
            "choir competition",
        ],
        "titles": [
            "{town} {thing} draws a record {n},{m}00 visitors",
            "Programme announced for the {town} {thing}",
            "{name} to headline the {town} {thing}",
            "After a two-year pause, the {town} {thing} returns",
        ],
        "sentences": [
            "The {thing} in {town} attracted {n},{m}00 visitors over {m} days, programme {ref}.",
            "Organiser {name} said ticket sales were up {pct} percent on last year.",
            "Performers came from {town2} and from as far away as the southern islands.",
            "Local cafés and hotels reported their busiest weekend of the year.",
            "The programme mixed established names with young artists from the region.",
            "A free family day on {day} drew crowds to the old town square.",
            "Volunteers from {town} ran the stages, the ticket desks and the cloakrooms.",
            "The festival received a grant of {n}0,000 from the regional arts fund.",
            "Next year's edition will move to a larger venue on the edge of {town}.",
            "Critics singled out a late-night performance by {name2} as the highlight.",
            "Organisers said about {pct} percent of visitors came from outside the region.",
            "The closing concert was broadcast live on regional radio.",
        ],
        "subheads": ["Highlights", "Behind the scenes", "Next year", "The numbers"],
        "quotes": [
            "It felt like the whole town came out to listen.",
            "Small festivals are where careers begin.",
            "We sold out the late shows within an hour.",
        ],
        "captions": ["Visitors at the {town} {thing} on {day}.", "{name} on stage at the {town} {thing}."],
    },
    "health": {
        "section": "Health",
        "things": [
            "the walk-in clinic",
            "the maternity ward",
            "the dental service",
            "the ambulance station",
            "the mental health helpline",
            "the physiotherapy unit",
            "the children's ward",
        ],
        "titles": [
            "Waiting lists shorten at {thing} in {town}",
            "{town} hospital expands {thing}",
            "Staff shortages put pressure on {thing} in {town}",
            "New opening hours for {thing} in {town}",
        ],
        "sentences": [
            "The health trust in {town} said {thing} would open longer hours from next month, notice {ref}.",
            "Waiting times have fallen by {pct} percent since the spring.",
            "The trust has recruited {n} new nurses, {m} of them from {town2}.",
            "Patients' representative {name} welcomed the change but urged better phone access.",
            "The service handled {n},{m}00 appointments last year.",
            "A new booking system lets patients choose a time slot online.",
            "Doctors said the change would ease pressure on the emergency department.",
            "The budget for {thing} rises by {pct} percent next year.",
            "Parking near the hospital remains a frequent complaint in patient surveys.",
            "Staff will be trained over {m} weeks before the new hours begin.",
            "The trust is also considering a satellite clinic in {town2}.",
            "Feedback from patients will be published every quarter.",
        ],
        "subheads": ["What changes", "Staffing", "Patients' view", "The budget"],
        "quotes": [
            "Every week shaved off a waiting list matters to someone.",
            "We cannot do more without more people.",
            "The new hours fit around working families much better.",
        ],
        "captions": ["The entrance to {thing} in {town}.", "Staff at {thing} in {town} on {day}."],
    },
    "technology": {
        "section": "Technology",
        "things": [
            "fibre broadband",
            "an electric bus fleet",
            "smart water meters",
            "a public Wi-Fi network",
            "an online permit system",
            "a car-sharing scheme",
            "heat-pump subsidies",
        ],
        "titles": [
            "{town} rolls out {thing} to {n},{m}00 homes",
            "Delays hit the introduction of {thing} in {town}",
            "{town2} follows {town} in adopting {thing}",
            "How {thing} changed daily life in {town}",
        ],
        "sentences": [
            "{town} began rolling out {thing} on {day}, contract {ref}.",
            "The first phase covers {n},{m}00 homes in the northern districts.",
            "Project manager {name} said {pct} percent of residents had signed up so far.",
            "The cost is shared between the municipality and a private operator.",
            "Residents of {town2} will be connected in a second phase in {year}.",
            "Some users reported teething problems in the first weeks.",
            "The system is designed to run for at least {m}0 years with regular upgrades.",
            "A help desk in the town hall assists older residents with the switch.",
            "The council expects savings of {n}00,000 a year once the system is complete.",
            "Data protection officials reviewed the scheme before it was approved.",
            "Installers are working in pairs to finish {m}0 homes a day.",
            "A survey found most residents were satisfied after the first month.",
        ],
        "subheads": ["The rollout", "Teething problems", "Costs and savings", "What users say"],
        "quotes": [
            "It just works, which is all anyone wants.",
            "The first week was chaos, the second was fine.",
            "Smaller towns should not be last in line for this.",
        ],
        "captions": ["Engineers install {thing} in {town}.", "A demonstration of {thing} at {town} town hall."],
    },
}
TOPIC_NAMES = sorted(TOPICS)


def _fill(template: str, ctx: dict[str, str]) -> str:
    return template.format(**ctx)


def generate(index: int, seed: int, base_time: datetime, feed: DemoFeed) -> DemoArticle:
    # One generator per article, drawn from in a fixed order: the same (seed, index) is the same article.
    rng = random.Random(f"{seed}:{index}")
    topic_name = TOPIC_NAMES[rng.randrange(len(TOPIC_NAMES))]
    topic = TOPICS[topic_name]
    ctx = _context(rng, seed, index, base_time, topic)
    title = _fill(rng.choice(topic["titles"]), ctx)
    title = title[0].upper() + title[1:]
    sentences = _sentences(rng, topic, ctx)
    blocks = _blocks(rng, topic, ctx, sentences, index)
    hours_ago = rng.uniform(0.5, 240)
    published = (base_time - timedelta(hours=hours_ago)).replace(microsecond=0)
    updated = published + timedelta(minutes=rng.randint(10, 180)) if rng.random() < 0.3 else None
    if updated is not None and updated > base_time:
        updated = None
    return DemoArticle(
        index=index,
        slug=f"{slugify(title)[:70].rstrip('-')}-{index}",
        section=topic["section"],
        title=title,
        description=sentences[0],
        author=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        published=published,
        updated=updated,
        lang="en",
        tags=(topic_name, ctx["town"]),
        blocks=tuple(blocks),
        generated=True,
        feed=feed,
    )


def _context(rng: random.Random, seed: int, index: int, base_time: datetime, topic: dict[str, Any]) -> dict[str, str]:
    town, town2 = rng.sample(TOWNS, 2)
    return {
        "town": town,
        "town2": town2,
        "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        "name2": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        "role": rng.choice(ROLES),
        "n": str(rng.randint(2, 9)),
        "m": str(rng.randint(2, 9)),
        "pct": str(rng.randint(3, 48)),
        "year": str(base_time.year + rng.randint(1, 4)),
        "day": rng.choice(WEEKDAYS),
        # The unique reference: makes every text differ even if two draws pick the same sentences.
        "ref": f"{seed % 1000:03d}-{index:05d}",
        "thing": rng.choice(topic["things"]),
    }


def _sentences(rng: random.Random, topic: dict[str, Any], ctx: dict[str, str]) -> list[str]:
    sentences = [_fill(s, ctx) for s in rng.sample(topic["sentences"], k=rng.randint(8, 11))]
    # Sentence 0 opens the story; the ref-bearing sentence must survive the sampling, so force it in.
    ref_sentence = next(_fill(s, ctx) for s in topic["sentences"] if "{ref}" in s)
    if ref_sentence not in sentences:
        sentences[rng.randrange(len(sentences))] = ref_sentence
    return sentences


def _blocks(
    rng: random.Random, topic: dict[str, Any], ctx: dict[str, str], sentences: list[str], index: int
) -> list[Block]:
    blocks: list[Block] = []
    if rng.random() < 0.8:
        blocks.append(
            Block(
                "fig",
                figure=Figure(
                    f"gen-{index}.png",
                    _fill(rng.choice(topic["captions"]), ctx),
                    rng.choice(["Newsflow Demo Photo", None]),
                ),
            )
        )
    subheads = rng.sample(topic["subheads"], k=2)
    i = 0
    paragraph_no = 0
    while i < len(sentences):
        take = rng.randint(1, 3)
        blocks.append(Block("p", text=" ".join(sentences[i : i + take])))
        i += take
        paragraph_no += 1
        if paragraph_no in (2, 4) and subheads and i < len(sentences):
            blocks.append(Block("h", text=subheads.pop(0)))
        if paragraph_no == 3 and i < len(sentences):
            quote = rng.choice(topic["quotes"])
            spoken = quote[:-1] + "," if quote.endswith(".") else quote
            blocks.append(Block("p", text=f"\u201c{spoken}\u201d said {ctx['name2']}, {ctx['role']}."))
    return blocks
