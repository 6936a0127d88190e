"""Every route refuses a query parameter it does not declare, as a 422 problem.

FastAPI ignores an unknown query parameter, so a dashboard's typo (`?stauts=open`, `?sort=due`
on a route without `sort`) silently returns the unfiltered list. The kit adds one app-wide
dependency that compares the request's query keys with the ones the route's dependant tree
declares (its own parameters and those of its dependencies, such as the page size and cursor),
and answers the same 422 problem as any other invalid field (`in: query`, code `extra_forbidden`).
The declared set is what the OpenAPI document lists, so the two cannot differ.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel

# Declared query names, read once per route and kept on it: the dependant tree is fixed when the
# route is made. Not in a dict by id: a test process builds many apps, and a freed route's id may be
# reused (and a route is unhashable, so no weak dict either).
_CACHE_ATTRIBUTE = "_kit_declared_query_names"


def _query_names(dependant: Dependant) -> set[str]:
    names: set[str] = set()
    for param in dependant.query_params:
        model = param.field_info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            # A query model (`Annotated[Filters, Query()]`) declares each of its fields.
            names.update(field.alias or name for name, field in model.model_fields.items())
        else:
            names.add(param.alias)
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def declared_query_names(route: APIRoute) -> frozenset[str]:
    names: frozenset[str] | None = getattr(route, _CACHE_ATTRIBUTE, None)
    if names is None:
        names = frozenset(_query_names(route.dependant))
        setattr(route, _CACHE_ATTRIBUTE, names)
    return names


async def refuse_unknown_query(request: Request) -> None:
    """The app-wide dependency: 422 when the query names a parameter the route does not declare."""
    if not request.scope.get("query_string"):
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = declared_query_names(route)
    unknown = sorted({key for key in request.query_params if key not in declared})
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", key),
                    "msg": f"Unknown query parameter; this route takes: {', '.join(sorted(declared)) or 'none'}",
                    "type": "extra_forbidden",
                }
                for key in unknown
            ]
        )
