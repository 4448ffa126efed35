// Command wlservice is a minimal WL service in Go: it calls its WL node's local API over mTLS with the stubs in
// generated/go, checks out with an idempotency key (retrying only transient codes, with the same key) and prints
// the ErrorInfo reason of a refused call.
//
// It builds offline with Debian's Go toolchain and libraries (GOPATH mode, see docs/clients.md):
//
//	wlservice -node 127.0.0.1:7500 -ca ca.crt -cert app.crt -key app.key -pin wl-b.wl.xporty.internal -buy wl-a:o-1
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"time"

	nodev1 "github.com/xporty/cross-wl/generated/go/xporty/node/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// retryable are the codes after which the same request (same idempotency key) may be sent again.
var retryable = map[codes.Code]bool{codes.Unavailable: true, codes.Aborted: true, codes.DeadlineExceeded: true}

// reason returns the ErrorInfo reason (a name of xporty.common.v1.ErrorReason) carried by err, if any.
func reason(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

func newKey() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		log.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func main() {
	node := flag.String("node", "127.0.0.1:7500", "host:port of this WL's node")
	caFile := flag.String("ca", "ca.crt", "CA bundle")
	certFile := flag.String("cert", "app.crt", "app certificate (spiffe://xporty/wl/<id>/app/<name>)")
	keyFile := flag.String("key", "app.key", "app key")
	pin := flag.String("pin", "", "DNS name the node's certificate must prove (wl-<id>.wl.xporty.internal)")
	buy := flag.String("buy", "", "imported offer id to buy")
	flag.Parse()

	pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatal(err)
	}
	pem, err := ioutil.ReadFile(*caFile)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots, ServerName: *pin})
	conn, err := grpc.Dial(*node, grpc.WithTransportCredentials(creds))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := nodev1.NewStorefrontServiceClient(conn)

	req := &nodev1.CheckoutRequest{IdempotencyKey: newKey(), ImportedOfferId: *buy, Quantity: 1, BuyerReference: "member-42"}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		resp, err := client.Checkout(ctx, req)
		cancel()
		if err == nil {
			fmt.Printf("checkout %s: %s\n", resp.GetCheckout().GetCheckoutId(), resp.GetCheckout().GetStatus())
			return
		}
		if !retryable[status.Code(err)] || attempt >= 5 {
			fmt.Printf("refused: %s (reason %s)\n", status.Code(err), reason(err))
			return
		}
		time.Sleep(time.Duration(200<<attempt) * time.Millisecond)
	}
}
