"""Pagination and other shapes every endpoint shares."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate


class PageQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=200))


def page_schema(item: type[Schema] | Schema, name: str, **extra: fields.Field) -> type[Schema]:
    """``{"items": [...], "total": N, "page": P, "per_page": K}`` for one item schema, with
    ``extra`` fields beside them."""
    attrs: dict[str, Any] = {
        "items": fields.List(fields.Nested(item)),
        "total": fields.Integer(),
        "page": fields.Integer(),
        "per_page": fields.Integer(),
        **extra,
    }
    return Schema.from_dict(attrs, name=name)
