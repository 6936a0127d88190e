"""Routes documented by their docstrings: the first line is the OpenAPI summary, the rest its description."""

from __future__ import annotations

import inspect

from fastapi import APIRouter
from fastapi.routing import APIRoute


def document_routes(router: APIRouter) -> None:
    """Give every route of `router` that has a docstring its summary and description from it, so the
    text a reader of the code sees is the text a reader of the API sees."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint.__doc__:
            summary, _, description = inspect.cleandoc(route.endpoint.__doc__).partition("\n")
            route.summary = summary.strip()
            route.description = description.strip()
