// A grpc-js client that loads ONLY the .proto files of proto/ (no generated code): @grpc/proto-loader for the
// service, protobufjs for google.rpc.Status. It sends a checkout the node refuses and prints the ErrorInfo reason.
//
// Environment: as main.ts (XCWL_NODE, XCWL_CA, XCWL_CERT, XCWL_KEY, XCWL_PINNED_NAME), XCWL_PROTO (the proto/ dir)
// and XCWL_BUY (an imported offer id the node does not have).
import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import * as protobuf from "protobufjs";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const protoDir = env("XCWL_PROTO");
const definition = protoLoader.loadSync("xporty/node/v1/storefront_service.proto", {
  includeDirs: [protoDir], keepCase: true, longs: String, enums: String, defaults: true,
});
const loaded = grpc.loadPackageDefinition(definition) as any;

// google.rpc.Status and its details, from proto/google/rpc (google/protobuf/* come bundled with protobufjs).
const root = new protobuf.Root();
root.resolvePath = (_origin, target) => (target.startsWith("google/protobuf/") ? target : path.join(protoDir, target));
root.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"]);
const Status = root.lookupType("google.rpc.Status");

const creds = grpc.credentials.createSsl(
  readFileSync(env("XCWL_CA")), readFileSync(env("XCWL_KEY")), readFileSync(env("XCWL_CERT")),
);
const client = new loaded.xporty.node.v1.StorefrontService(env("XCWL_NODE"), creds, {
  "grpc.ssl_target_name_override": env("XCWL_PINNED_NAME"),
  "grpc.default_authority": env("XCWL_PINNED_NAME"),
});

const request = { idempotency_key: "proto-loader-1", imported_offer_id: env("XCWL_BUY"), quantity: "1", buyer_reference: "m-1" };
client.Checkout(request, { deadline: new Date(Date.now() + 10_000) }, (err: grpc.ServiceError | null) => {
  if (!err) {
    process.stdout.write(JSON.stringify({ refused: false }) + "\n");
    process.exit(1);
  }
  const raw = err.metadata.get("grpc-status-details-bin")[0] as Buffer;
  const status = Status.decode(raw) as unknown as { code: number; details: { type_url: string; value: Uint8Array }[] };
  const out: Record<string, unknown> = { refused: true, code: grpc.status[err.code], statusCode: status.code };
  for (const any of status.details) {
    const typeName = any.type_url.substring(any.type_url.lastIndexOf("/") + 1);
    const type = root.lookupType(typeName);
    const detail = type.toObject(type.decode(any.value), { defaults: true });
    if (typeName === "google.rpc.ErrorInfo") {
      out.reason = detail.reason;
      out.domain = detail.domain;
      out.metadata = detail.metadata;
    }
  }
  process.stdout.write(JSON.stringify(out) + "\n");
  client.close();
});
