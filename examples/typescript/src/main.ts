// An example WL service in TypeScript, using the stubs generated into generated/ts.
//
// As an app of its WL (certificate spiffe://xporty/wl/<id>/app/<name>) it calls its own node's local API:
// subscribes to its pairs (policies and signals), publishes an offer, lists the imported catalog, checks out with
// an idempotency key (retrying safely, and once more as a duplicate), and decodes the ErrorInfo reason of a refused
// call. Each step prints one JSON line on stdout, so a test (or a person) can follow it.
//
// Environment: XCWL_NODE (host:port), XCWL_CA, XCWL_CERT, XCWL_KEY, XCWL_PINNED_NAME, XCWL_BUY (imported offer id),
// XCWL_OFFER_ID (id of the offer to publish), XCWL_CURRENCY (this WL's currency), XCWL_WAIT_SIGNAL=1 to wait for
// one signal on the pairs stream before exiting.
import { randomUUID } from "node:crypto";
import { ServiceError } from "@grpc/grpc-js";
import { connect, decodeError, RETRYABLE, unary } from "./connect";
import { CheckoutRequest, CheckoutResponse, WatchPairsResponse } from "../../../generated/ts/xporty/node/v1/storefront_service";
import { CheckoutStatus, checkoutStatusToJSON, pairSignalKindToJSON } from "../../../generated/ts/xporty/node/v1/storefront";
import { errorReasonFromJSON, ErrorReason } from "../../../generated/ts/xporty/common/v1/errors";
import { Offer } from "../../../generated/ts/xporty/trader/v1/offer";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function step(name: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ step: name, ...fields }) + "\n");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const client = connect({
    target: env("XCWL_NODE"), caFile: env("XCWL_CA"), certFile: env("XCWL_CERT"), keyFile: env("XCWL_KEY"),
    pinnedName: env("XCWL_PINNED_NAME"),
  });

  // 1. Subscribe to the pairs: the current policies first, then each new version and each applied signal.
  const events: WatchPairsResponse[] = [];
  let wake: (() => void) | null = null;
  const stream = client.watchPairs({});
  stream.on("data", (e: WatchPairsResponse) => { events.push(e); wake?.(); });
  stream.on("error", (e: ServiceError) => { if (e.code !== 1 /* CANCELLED by us */) step("stream-error", decodeError(e) as never); });
  const nextEvent = async (timeoutMs: number): Promise<WatchPairsResponse> => {
    const until = Date.now() + timeoutMs;
    while (events.length === 0) {
      if (Date.now() > until) throw new Error("no event on the pairs stream");
      await new Promise<void>((r) => { wake = r; setTimeout(r, 200); });
    }
    return events.shift()!;
  };
  const first = await nextEvent(10_000);
  step("pairs", {
    policyVersion: first.pairs?.policyVersion,
    pairs: first.pairs?.pairs.map((p) => ({ wlA: p.wlA, wlB: p.wlB, fxRate: p.fxRate })),
  });

  // 2. Publish an offer of this WL.
  const published = await unary(client.publishOffer.bind(client), {
    offer: Offer.fromPartial({
      offerId: env("XCWL_OFFER_ID"), title: "Hand-made chair", description: "Oak, from the TypeScript example",
      category: "furniture", unitPrice: { currency: env("XCWL_CURRENCY"), amount: "40.00" }, stock: "3",
      // The trader's manager: personal data, masked by the node wherever it leaves it.
      manager: { name: "Ana Souza", email: "ana@example.com", phone: "+55 11 5555-0100" },
    }),
  });
  step("published", { offerId: published.offer?.offerId, exporterWl: published.offer?.exporterWl });

  // 3. List the imported catalog (all pages).
  const imported: string[] = [];
  let pageToken = "";
  do {
    const page = await unary(client.listImportedOffers.bind(client), {
      sourceWl: "", category: "", text: "", pageSize: 100, pageToken,
    });
    imported.push(...page.offers.map((o) => o.importedOfferId));
    pageToken = page.nextPageToken;
  } while (pageToken);
  step("catalog", { imported });

  // 4. Checkout with an idempotency key; retry transient failures with the SAME key; then send it again.
  const key = randomUUID();
  const request: CheckoutRequest = { idempotencyKey: key, importedOfferId: env("XCWL_BUY"), quantity: "1", buyerReference: "member-42" };
  const checkout = async (req: CheckoutRequest): Promise<CheckoutResponse> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await unary(client.checkout.bind(client), req, 15_000);
      } catch (e) {
        const err = decodeError(e as ServiceError);
        if (!RETRYABLE.has(err.code) || attempt >= 5) throw e;
        await sleep(err.retryDelayMs ?? 200 * 2 ** attempt);
      }
    }
  };
  const done = await checkout(request);
  const again = await checkout(request);
  step("checkout", {
    checkoutId: done.checkout?.checkoutId, status: checkoutStatusToJSON(done.checkout?.status ?? CheckoutStatus.CHECKOUT_STATUS_UNSPECIFIED),
    total: done.checkout?.total, duplicateCheckoutId: again.checkout?.checkoutId,
  });

  // 5. A refused call: the same key for a different request. Decode google.rpc.Status → ErrorInfo.reason.
  try {
    await unary(client.checkout.bind(client), { ...request, quantity: "2" });
    step("refused", { unexpected: "accepted" });
  } catch (e) {
    const err = decodeError(e as ServiceError);
    const known = errorReasonFromJSON(err.reason) !== ErrorReason.UNRECOGNIZED;
    step("refused", { code: err.codeName, reason: err.reason, knownReason: known, fieldViolations: err.fieldViolations });
  }

  // 6. Optionally wait for a signal on the pairs stream (the test sends one after seeing this line).
  if (process.env.XCWL_WAIT_SIGNAL === "1") {
    step("waiting-signal");
    for (;;) {
      const e = await nextEvent(20_000);
      if (e.signal) {
        step("signal", {
          kind: pairSignalKindToJSON(e.signal.kind), exporterWl: e.signal.exporterWl, importerWl: e.signal.importerWl,
          reason: e.signal.reason,
        });
        break;
      }
    }
  }
  stream.cancel();
  client.close();
}

main().catch((e) => {
  process.stderr.write(`example failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
