// Connecting to the WL node's local API over mTLS with an app certificate, pinning the node's identity.
import { readFileSync } from "node:fs";
import { credentials, Metadata, ServiceError, status } from "@grpc/grpc-js";
import { StorefrontServiceClient } from "../../../generated/ts/xporty/node/v1/storefront_service";
import { Status } from "../../../generated/ts/google/rpc/status";
import { BadRequest, ErrorInfo, RetryInfo } from "../../../generated/ts/google/rpc/error_details";

/** Where the node is and which files prove who we are (the CA bundle, our app certificate and key). */
export interface NodeConnection {
  /** host:port of the WL node's listener. */
  target: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The DNS name the CA assigned to the node's WL (`wl-<id>.xporty.internal`): its certificate must prove it. */
  pinnedName: string;
}

/** A StorefrontService client over mTLS; the node must present a certificate for `pinnedName`. */
export function connect(c: NodeConnection): StorefrontServiceClient {
  const creds = credentials.createSsl(readFileSync(c.caFile), readFileSync(c.keyFile), readFileSync(c.certFile));
  return new StorefrontServiceClient(c.target, creds, {
    "grpc.ssl_target_name_override": c.pinnedName,
    "grpc.default_authority": c.pinnedName,
  });
}

/** The error model: the gRPC code, the message, and the google.rpc details the server attached. */
export interface XporyError {
  code: status;
  codeName: string;
  message: string;
  /** ErrorInfo.reason: one name of xporty.common.v1.ErrorReason (domain "xporty"). */
  reason: string;
  metadata: Record<string, string>;
  fieldViolations: { field: string; description: string }[];
  retryDelayMs?: number;
}

/** Decode `grpc-status-details-bin` (a google.rpc.Status) with the generated stubs. */
export function decodeError(err: ServiceError): XporyError {
  const out: XporyError = {
    code: err.code, codeName: status[err.code], message: err.details, reason: "", metadata: {}, fieldViolations: [],
  };
  const raw = (err.metadata ?? new Metadata()).get("grpc-status-details-bin")[0];
  if (!raw) return out;
  const st = Status.decode(raw as Buffer);
  for (const any of st.details) {
    const type = any.typeUrl.substring(any.typeUrl.lastIndexOf("/") + 1);
    if (type === "google.rpc.ErrorInfo") {
      const info = ErrorInfo.decode(any.value);
      out.reason = info.reason;
      out.metadata = info.metadata;
    } else if (type === "google.rpc.BadRequest") {
      out.fieldViolations = BadRequest.decode(any.value).fieldViolations.map((v) => ({
        field: v.field, description: v.description,
      }));
    } else if (type === "google.rpc.RetryInfo") {
      const delay = RetryInfo.decode(any.value).retryDelay;
      if (delay) out.retryDelayMs = Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1e6);
    }
  }
  return out;
}

/** Codes after which the SAME request (same idempotency key) may be sent again. */
export const RETRYABLE = new Set<status>([status.UNAVAILABLE, status.ABORTED, status.DEADLINE_EXCEEDED]);

/** Promise-returning unary call with a deadline. */
export function unary<Req, Res>(
  call: (req: Req, md: Metadata, opts: { deadline: Date }, cb: (e: ServiceError | null, r: Res) => void) => unknown,
  req: Req,
  timeoutMs = 10_000,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    call(req, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (e, r) => (e ? reject(e) : resolve(r)));
  });
}
