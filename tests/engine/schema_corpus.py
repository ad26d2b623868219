"""A corpus of tricky Pydantic output models and what OpenAI strict mode can do with each.

``CORPUS`` lists ``(model, strict, reason)``: ``strict`` says whether the model can be sent
under strict structured outputs; for the others ``reason`` is a fragment the verdict must
contain (naming the model and field).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr


class Flat(BaseModel):
    name: str
    count: int
    ratio: float
    ok: bool


class Address(BaseModel):
    street: str
    city: str
    zip_code: str | None = None


class Person(BaseModel):
    """Nested models, a list of models and an optional nested model."""

    name: str
    home: Address
    past: list[Address] = []
    work: Optional[Address] = None


class Settings(BaseModel):
    retries: int = 3
    label: str = "x"
    weights: list[float] = [0.5]


class OptionalWithDefaults(BaseModel):
    """The issue's case: a null inside Optional[Model] whose fields have defaults."""

    settings: Optional[Settings] = None
    backup: Settings = Settings()


class Tree(BaseModel):
    """Recursive through a list (the root is a $ref to itself)."""

    value: int
    children: list[Tree] = []


class LinkedNode(BaseModel):
    value: str
    next: Optional[LinkedNode] = None


class LinkedList(BaseModel):
    """Recursive through an Optional, under a non-recursive root."""

    head: LinkedNode
    size: int


class Color(str, enum.Enum):
    red = "red"
    green = "green"


class Level(enum.IntEnum):
    low = 1
    high = 2


class Literals(BaseModel):
    kind: Literal["a", "b"]
    flag: Literal[True]
    mixed: Literal[1, "one"]
    maybe: Optional[Literal["x"]] = None
    color: Color
    level: Level = Level.low


class Cat(BaseModel):
    name: str
    kind: Literal["cat"]
    meows: int


class Dog(BaseModel):
    name: str
    kind: Literal["dog"]
    barks: bool = True


class Pets(BaseModel):
    """A discriminated union whose members share their first field (name)."""

    pet: Union[Cat, Dog] = Field(discriminator="kind")
    others: list[Annotated[Union[Cat, Dog], Field(discriminator="kind")]] = []


class Circle(BaseModel):
    radius: float
    label: str = ""


class Square(BaseModel):
    side: float
    label: str = ""


class Shapes(BaseModel):
    """A plain (undiscriminated) union of models."""

    shape: Union[Circle, Square]
    value: Union[int, str]


class Constrained(BaseModel):
    code: str = Field(min_length=2, max_length=8)
    slug: Annotated[str, Field(pattern=r"^[a-z]{2,5}$")]
    age: int = Field(ge=0, le=150)
    score: float = Field(gt=0, lt=1)
    step: int = Field(multiple_of=5, ge=0, le=100)
    tags: list[str] = Field(default=[], min_length=0, max_length=3)


class Times(BaseModel):
    at: dt.datetime
    day: dt.date
    clock: dt.time
    span: dt.timedelta
    id: uuid.UUID


class Annotated_(BaseModel):
    model_config = ConfigDict(title="AnnotatedFields")

    title: Annotated[str, Field(description="the title", max_length=80)]
    rating: Annotated[int, Field(ge=1, le=5, description="stars")] = 3
    where: Annotated[Address, Field(description="a $ref with a sibling description")]


class Sets(BaseModel):
    words: set[str]
    pair: tuple[int, int]
    many: tuple[float, ...] = ()
    grid: list[list[int]]


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    first_name: str = Field(alias="firstName")
    item_count: int = Field(default=0, alias="itemCount")


class NullableInLists(BaseModel):
    values: list[Optional[int]]
    maybe_list: Optional[list[str]] = None
    matrix: dict[str, int] | None = None


class Secret(BaseModel):
    token: SecretStr
    note: str = Field(default="", pattern=r"^[A-Z][a-z]*( [a-z]+)*$")


class Money(BaseModel):
    """Decimal's string form is a pattern with a lookahead."""

    amount: Decimal


class Empty(BaseModel):
    pass


class HasEmpty(BaseModel):
    nothing: Empty
    note: str = ""


class Counts(BaseModel):
    """dict[str, int]: the issue's case (strict mode needs fixed keys)."""

    word: str
    counts: dict[str, int]


class ByName(BaseModel):
    people: dict[str, Person]


class Pair(BaseModel):
    pair: tuple[int, str]


class Loose(BaseModel):
    payload: Any


class Link(BaseModel):
    url: HttpUrl


class Blob(BaseModel):
    data: bytes


class L10(BaseModel):
    x: int


class L9(BaseModel):
    n: L10


class L8(BaseModel):
    n: L9


class L7(BaseModel):
    n: L8


class L6(BaseModel):
    n: L7


class L5(BaseModel):
    n: L6


class L4(BaseModel):
    n: L5


class L3(BaseModel):
    n: L4


class L2(BaseModel):
    n: L3


class L1(BaseModel):
    n: L2


class TooDeep(BaseModel):
    """Eleven levels of nested objects (strict mode allows ten)."""

    n: L1


class Everything(BaseModel):
    """Many constructs at once."""

    person: Person
    pets: Pets
    times: Times
    literals: Literals
    tree: Optional[Tree] = None
    notes: list[str] = []


CORPUS: list[tuple[type[BaseModel], bool, str | None]] = [
    (Flat, True, None),
    (Person, True, None),
    (OptionalWithDefaults, True, None),
    (Tree, True, None),
    (LinkedList, True, None),
    (Literals, True, None),
    (Pets, True, None),
    (Shapes, True, None),
    (Constrained, True, None),
    (Times, True, None),
    (Annotated_, True, None),
    (Sets, True, None),
    (Aliased, True, None),
    (Secret, True, None),
    (HasEmpty, True, None),
    (Everything, True, None),
    (NullableInLists, False, "NullableInLists.matrix"),
    (Counts, False, "Counts.counts: a dict with free-form keys"),
    (ByName, False, "ByName.people: a dict with free-form keys"),
    (Pair, False, "Pair.pair: a tuple with different item types"),
    (Loose, False, "Loose.payload: any value"),
    (Link, False, "Link.url: string format 'uri'"),
    (Blob, False, "Blob.data: string format 'binary'"),
    (Money, False, "Money.amount: pattern"),
    (TooDeep, False, "levels of object nesting"),
]
