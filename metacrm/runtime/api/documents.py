"""The metadata API of a named document kind (roles, pipelines, approval processes): list,
create, read, replace, delete, versions and restore. Only admins read or change metadata."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.metadata import store
from metacrm.metadata.documents import DocumentDesigner
from metacrm.platform.errors import BadRequest, NotFound
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.http import JSONResponse, read_json
from metacrm.runtime.api.operation import Body, Endpoint, Handler, Operation, page, ref


@dataclass(frozen=True)
class DocumentEndpoints:
    # The path segment under /api/v1/meta, e.g. "roles" or "approval-processes".
    collection: str
    kind: str
    designer: Callable[[Work], DocumentDesigner[Any]]
    # One line of the list: a summary of a stored document.
    summary: Callable[[store.StoredDocument], dict[str, Any]]

    # The OpenAPI schema names of the document and of a line of the list; what create and
    # replace take, when it is more than the document (None: the document).
    schema: str
    summary_schema: str
    input_schema: str | None = None

    def routes(self, prefix: str) -> list[tuple[str, str, Endpoint]]:
        base = f"{prefix}/meta/{self.collection}"
        one = f"{base}/{{name}}"
        noun, words = self.kind, self.kind.replace("_", " ")
        document, body = ref(self.schema), Body(ref(self.input_schema or self.schema))
        summaries = page(ref(self.summary_schema))
        described = self._described
        plural = self.collection.replace("-", " ")
        listed = described(self.list, f"list_{self._tag}", f"All {plural}", response=summaries)
        created = described(
            self.create,
            f"create_{noun}",
            f"Create a {words}",
            status=201,
            body=body,
            response=document,
            errors=(409,),
        )
        read = described(self.get, f"get_{noun}", f"A {words}, with its version", response=document)
        replaced = described(
            self.replace,
            f"replace_{noun}",
            f"Replace a {words}",
            body=body,
            response=document,
            errors=(409, 412),
            description="Send back the `version` you read to be refused (412) if someone changed "
            "the document in between.",
        )
        deleted = described(
            self.delete, f"delete_{noun}", f"Delete a {words}", status=204, errors=(409,)
        )
        versions = described(
            self.versions,
            f"{noun}_versions",
            "Every version, with author, time and diff",
            response=page(ref("DocumentVersion")),
        )
        restored = described(
            self.restore,
            f"restore_{noun}_version",
            "Make an old version current again",
            response=document,
            errors=(409,),
        )
        return [
            ("GET", base, listed),
            ("POST", base, created),
            ("GET", one, read),
            ("PUT", one, replaced),
            ("DELETE", one, deleted),
            ("GET", f"{one}/versions", versions),
            ("POST", f"{one}/versions/{{version}}/restore", restored),
        ]

    @property
    def _tag(self) -> str:
        return self.collection.replace("-", "_")

    def _described(
        self, handler: Handler, operation_id: str, summary: str, **details: Any
    ) -> Endpoint:
        return Endpoint(handler, Operation(operation_id, self._tag, summary, **details))

    def _document(self, work: Work, name: str) -> dict[str, Any]:
        found = self.designer(work).current(name)
        return {**found.document, "version": found.version}

    async def list(self, request: Request) -> Response:
        def summaries(work: Work) -> list[dict[str, Any]]:
            return [self.summary(doc) for doc in store.load_all(work.conn, self.kind)]

        return JSONResponse({"data": await runtime_of(request).run(request, summaries, admin=True)})

    async def create(self, request: Request) -> Response:
        body = await read_json(request)

        def create(work: Work) -> dict[str, Any]:
            designer = self.designer(work)
            designer.create(body)
            return self._document(work, designer.kind.key(body))

        document = await runtime_of(request).run(request, create, write=True, admin=True)
        return JSONResponse(document, status_code=201)

    async def get(self, request: Request) -> Response:
        name = request.path_params["name"]
        return JSONResponse(
            await runtime_of(request).run(request, lambda w: self._document(w, name), admin=True)
        )

    async def replace(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await read_json(request)

        def replace(work: Work) -> dict[str, Any]:
            self.designer(work).replace(name, body)
            return self._document(work, name)

        return JSONResponse(await runtime_of(request).run(request, replace, write=True, admin=True))

    async def delete(self, request: Request) -> Response:
        name = request.path_params["name"]

        def remove(work: Work) -> None:
            self.designer(work).delete(name)

        await runtime_of(request).run(request, remove, write=True, admin=True)
        return Response(status_code=204)

    async def versions(self, request: Request) -> Response:
        name = request.path_params["name"]

        def history(work: Work) -> list[dict[str, Any]]:
            found = [v.as_json() for v in store.versions(work.conn, self.kind, name)]
            if not found:
                raise NotFound(f"no {self.designer(work).kind.noun} named {name!r}")
            return found

        return JSONResponse({"data": await runtime_of(request).run(request, history, admin=True)})

    async def restore(self, request: Request) -> Response:
        name, raw = request.path_params["name"], request.path_params["version"]
        if not (raw.isascii() and raw.isdigit()):
            raise BadRequest("the version must be a whole number")
        if len(raw) > 9:
            raise NotFound(f"{name!r} has no version {raw}")

        def restore(work: Work) -> dict[str, Any]:
            self.designer(work).restore(name, int(raw))
            return self._document(work, name)

        return JSONResponse(await runtime_of(request).run(request, restore, write=True, admin=True))
