"""A minimal OTLP/HTTP trace collector for the scale-out example: it accepts what the workers export
(`POST /v1/traces`, protobuf) and appends one JSON line per span to a file. In production point
`OTEL_EXPORTER_OTLP_ENDPOINT` at a real collector (OpenTelemetry Collector, Jaeger, Tempo, Phoenix).

    python examples/scale_out/collector.py --port 4318 --out spans.jsonl
"""

from __future__ import annotations

import argparse
import gzip
import json
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _attrs(kvs) -> dict:
    out = {}
    for kv in kvs:
        v = kv.value
        out[kv.key] = v.string_value or v.int_value or v.double_value or v.bool_value
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--out', required=True)
    args = ap.parse_args()

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
            enc = (self.headers.get('Content-Encoding') or '').lower()
            if enc == 'gzip':
                body = gzip.decompress(body)
            elif enc == 'deflate':
                body = zlib.decompress(body)
            if self.path != '/v1/traces':
                self.send_response(404)
                self.end_headers()
                return
            req = ExportTraceServiceRequest.FromString(body)
            with open(args.out, 'a') as f:
                for rs in req.resource_spans:
                    resource = _attrs(rs.resource.attributes)
                    for ss in rs.scope_spans:
                        for span in ss.spans:
                            line = {
                                'trace_id': span.trace_id.hex(),
                                'span_id': span.span_id.hex(),
                                'parent_span_id': span.parent_span_id.hex() or None,
                                'name': span.name,
                                'kind': span.kind,
                                'attributes': _attrs(span.attributes),
                                'service': resource.get('service.name'),
                                'pid': resource.get('process.pid'),
                            }
                            f.write(json.dumps(line, default=str) + '\n')
            payload = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header('Content-Type', 'application/x-protobuf')
            self.send_header('Content-Length', str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *a: object) -> None:  # quiet
            pass

    ThreadingHTTPServer(('127.0.0.1', args.port), Handler).serve_forever()


if __name__ == '__main__':
    main()
