"""The built-in label schemas: EndoVis 2018 scene, EndoVis 2017 parts/type/binary, CholecSeg8k.

Colours and pixel values follow the datasets' own files (DESIGN section 3); ``prompts`` are the
names a CLIP text encoder is given for each class.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from napari_cliprl.schemas.core import LabelClass, LabelSchema


def _classes(rows: Iterable[Sequence[Any]]) -> tuple[LabelClass, ...]:
    out = []
    for i, row in enumerate(rows):
        name, color, prompts, *value = row
        out.append(LabelClass(i, name, tuple(color), tuple(prompts), value[0] if value else None))
    return tuple(out)


ENDOVIS2018 = LabelSchema(
    "endovis2018",
    _classes(
        [
            ("background-tissue", (0, 0, 0), ("tissue", "background tissue", "organ surface")),
            ("instrument-shaft", (0, 255, 0), ("instrument shaft", "metal shaft of a tool")),
            ("instrument-clasper", (0, 255, 255), ("instrument clasper", "grasper jaws")),
            ("instrument-wrist", (125, 255, 12), ("instrument wrist", "robotic wrist joint")),
            ("kidney-parenchyma", (255, 55, 0), ("kidney", "kidney parenchyma")),
            ("covered-kidney", (24, 55, 125), ("covered kidney", "kidney covered by fat")),
            ("thread", (187, 155, 25), ("thread", "suture thread")),
            ("clamps", (0, 255, 125), ("clamp", "surgical clip")),
            ("suturing-needle", (255, 255, 125), ("needle", "suturing needle")),
            ("suction-instrument", (123, 15, 175), ("suction instrument", "suction tube")),
            ("small-intestine", (124, 155, 5), ("small intestine", "bowel", "intestine")),
            ("ultrasound-probe", (12, 255, 141), ("ultrasound probe", "probe")),
        ]
    ),
    description="EndoVis 2018 robotic scene segmentation (12 classes, RGB label files)",
)

ENDOVIS2017_PARTS = LabelSchema(
    "endovis2017-parts",
    _classes(
        [
            ("background", (0, 0, 0), ("tissue", "background"), 0),
            ("shaft", (0, 255, 0), ("instrument shaft", "metal shaft"), 30),
            ("wrist", (125, 255, 12), ("instrument wrist", "wrist joint"), 100),
            ("clasper", (0, 255, 255), ("instrument clasper", "grasper jaws"), 255),
        ]
    ),
    encoding="value",
    description="EndoVis 2017 instrument parts (test ground truth values 0/30/100/255)",
)

ENDOVIS2017_TYPE = LabelSchema(
    "endovis2017-type",
    _classes(
        [
            ("background", (0, 0, 0), ("tissue", "background")),
            ("bipolar-forceps", (0, 255, 0), ("bipolar forceps", "maryland bipolar forceps")),
            ("prograsp-forceps", (0, 255, 255), ("prograsp forceps", "grasping forceps")),
            ("large-needle-driver", (125, 255, 12), ("needle driver", "large needle driver")),
            ("vessel-sealer", (255, 55, 0), ("vessel sealer",)),
            ("grasping-retractor", (24, 55, 125), ("grasping retractor", "retractor")),
            ("monopolar-curved-scissors", (187, 155, 25), ("curved scissors", "scissors")),
            ("other", (123, 15, 175), ("ultrasound probe", "surgical instrument")),
        ]
    ),
    encoding="value",
    description="EndoVis 2017 instrument types (test ground truth: type id per pixel)",
)

ENDOVIS2017_BINARY = LabelSchema(
    "endovis2017-binary",
    _classes(
        [
            ("background", (0, 0, 0), ("tissue", "background"), 0),
            ("instrument", (0, 255, 0), ("surgical instrument", "robotic instrument"), 255),
        ]
    ),
    encoding="value",
    description="EndoVis 2017 binary instrument segmentation (0/255)",
)

CHOLECSEG8K = LabelSchema(
    "cholecseg8k",
    _classes(
        [
            ("black-background", (127, 127, 127), ("black background", "dark border"), 50),
            ("abdominal-wall", (210, 140, 140), ("abdominal wall",), 11),
            ("liver", (255, 114, 114), ("liver",), 21),
            ("gastrointestinal-tract", (231, 70, 156), ("gastrointestinal tract", "bowel"), 13),
            ("fat", (186, 183, 75), ("fat", "fatty tissue"), 12),
            ("grasper", (170, 255, 0), ("grasper", "surgical grasper"), 31),
            ("connective-tissue", (255, 85, 0), ("connective tissue",), 23),
            ("blood", (255, 0, 0), ("blood",), 24),
            ("cystic-duct", (255, 255, 0), ("cystic duct",), 25),
            ("l-hook-electrocautery", (169, 255, 184), ("electrocautery hook", "l-hook"), 32),
            ("gallbladder", (255, 160, 165), ("gallbladder",), 22),
            ("hepatic-vein", (0, 50, 128), ("hepatic vein",), 33),
            ("liver-ligament", (111, 74, 0), ("liver ligament",), 5),
        ]
    ),
    description="CholecSeg8k laparoscopic cholecystectomy (13 classes; codes in 'value')",
)
