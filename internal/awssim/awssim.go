// Package awssim is test infrastructure: a local AWS that the real
// aws-sdk-go-v2 clients reach through their base endpoint. It speaks the
// real wire protocols (query/XML for STS, JSON 1.1 for the others) with
// AWS's shapes and error codes, for exactly the operations vmctl calls. It
// never stands in for AWS in the product.
package awssim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
)

// Sim is one simulated AWS; state is per instance, so tests can run several.
type Sim struct {
	srv   *httptest.Server
	mu    sync.Mutex
	users map[string]Principal // by access key ID
	reqID atomic.Int64
}

// Principal is who an access key belongs to.
type Principal struct {
	Account string
	ARN     string
	UserID  string
}

// New starts a simulator on 127.0.0.1.
func New() *Sim {
	s := &Sim{users: map[string]Principal{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the base endpoint for every client.
func (s *Sim) URL() string { return s.srv.URL }

// Close stops the simulator.
func (s *Sim) Close() { s.srv.Close() }

// AddUser registers an access key (any secret is accepted: the simulator
// checks who signed, not the signature).
func (s *Sim) AddUser(accessKeyID string, p Principal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.UserID == "" {
		p.UserID = accessKeyID
	}
	s.users[accessKeyID] = p
}

var credentialRe = regexp.MustCompile(`Credential=([A-Z0-9]+)/`)

func (s *Sim) principal(r *http.Request) (Principal, bool) {
	m := credentialRe.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return Principal{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.users[m[1]]
	return p, ok
}

func (s *Sim) requestID() string { return "sim-" + strconv.FormatInt(s.reqID.Add(1), 10) }

func (s *Sim) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Query protocol services are told apart by their API version.
	switch r.PostForm.Get("Version") {
	case "2011-06-15":
		s.sts(w, r)
		return
	}
	http.Error(w, fmt.Sprintf("awssim: no service for %s %s", r.Method, r.URL.Path), http.StatusNotImplemented)
}

// queryError writes the query protocol's error document.
func (s *Sim) queryError(w http.ResponseWriter, status int, code, msg string) {
	type errBody struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	body := struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Error     errBody  `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}{Error: errBody{Type: "Sender", Code: code, Message: msg}, RequestID: s.requestID()}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_ = xml.NewEncoder(w).Encode(body)
}

func (s *Sim) sts(w http.ResponseWriter, r *http.Request) {
	p, ok := s.principal(r)
	if !ok {
		s.queryError(w, http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	}
	switch r.PostForm.Get("Action") {
	case "GetCallerIdentity":
		type result struct {
			Arn     string `xml:"Arn"`
			UserID  string `xml:"UserId"`
			Account string `xml:"Account"`
		}
		body := struct {
			XMLName  xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ GetCallerIdentityResponse"`
			Result   result   `xml:"GetCallerIdentityResult"`
			Metadata struct {
				RequestID string `xml:"RequestId"`
			} `xml:"ResponseMetadata"`
		}{Result: result{Arn: p.ARN, UserID: p.UserID, Account: p.Account}}
		body.Metadata.RequestID = s.requestID()
		w.Header().Set("Content-Type", "text/xml")
		_ = xml.NewEncoder(w).Encode(body)
	default:
		s.queryError(w, http.StatusBadRequest, "InvalidAction", "Could not find operation "+r.PostForm.Get("Action")+" for version 2011-06-15")
	}
}
