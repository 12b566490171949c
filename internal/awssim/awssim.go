// Package awssim is test infrastructure: a local AWS that the real
// aws-sdk-go-v2 clients reach through their base endpoint. It speaks the
// real wire protocols (query/XML for STS, Auto Scaling, ELBv2 and
// CloudFormation; REST/XML for S3; JSON 1.1
// for ECR, ECS, SSM, CloudWatch Logs and Application Auto Scaling) with
// AWS's shapes and error codes, for exactly the operations vmctl calls. It
// never stands in for AWS in the product.
package awssim

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/client"
)

// Sim is one simulated AWS; state is per instance, so tests can run several.
type Sim struct {
	ID  string // labels everything the simulator starts, for cleanup
	srv *httptest.Server

	mu     sync.Mutex
	users  map[string]Principal // by access key ID
	faults map[string]*Fault    // by "Service.Operation"
	calls  map[string]int       // by "Service.Operation"
	reqID  atomic.Int64

	// Services register here (see Register*); the dispatcher routes by the
	// JSON protocol's X-Amz-Target prefix or the query protocol's Version.
	json  map[string]JSONService
	query map[string]QueryService

	closers []func()

	compute *compute // ECS, ELBv2, Application Auto Scaling (ecs.go)

	docker *client.Client // see UseDocker; ECS runs tasks and Logs reads them through it

	registry *ociRegistry // the OCI registry behind ECR (registry.go)
	ecr      *ecrState
	ssm      *ssmState
	fleet    *fleet // Auto Scaling groups and their simulated instances
	logs     *logStore
	cfn      *cfnState // CloudFormation stacks (cloudformation*.go)
	s3       *s3State  // the template bucket (s3.go)
}

// JSONService handles one JSON 1.1 service's operations: it returns the
// output to encode, or an *Error.
type JSONService struct {
	Name    string // short name used for faults, e.g. "ECS"
	Handler func(r *http.Request, op string, body []byte) (any, error)
}

// QueryService handles one query-protocol service: it returns the XML
// document to encode (the <XxxResponse> element), or an *Error.
type QueryService struct {
	Name    string
	XMLNS   string
	Handler func(r *http.Request, op string) (any, error)
}

// Error is an AWS error as the wire protocols carry it.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds a client error (400) with an AWS error code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Principal is who an access key belongs to.
type Principal struct {
	Account string
	ARN     string
	UserID  string
}

var simSeq atomic.Int64

// New starts a simulator on 127.0.0.1.
func New() *Sim {
	s := &Sim{
		ID:     fmt.Sprintf("%d-%d", time.Now().UnixNano(), simSeq.Add(1)),
		users:  map[string]Principal{},
		faults: map[string]*Fault{},
		calls:  map[string]int{},
		json:   map[string]JSONService{},
		query:  map[string]QueryService{},
	}
	s.RegisterQuery("2011-06-15", QueryService{Name: "STS", XMLNS: "https://sts.amazonaws.com/doc/2011-06-15/", Handler: s.sts})
	s.registerECR()
	s.registerSSM()
	s.registerAutoScaling()
	s.registerLogs()
	s.startCompute()
	s.registerCloudFormation()
	s.s3 = &s3State{buckets: map[string]*s3Bucket{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// RegisterJSON routes X-Amz-Target "<prefix>.<Operation>" to a service.
func (s *Sim) RegisterJSON(targetPrefix string, svc JSONService) { s.json[targetPrefix] = svc }

// RegisterQuery routes query requests of an API version to a service.
func (s *Sim) RegisterQuery(version string, svc QueryService) { s.query[version] = svc }

// OnClose runs f when the simulator closes (containers, registries).
func (s *Sim) OnClose(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closers = append(s.closers, f)
}

// URL is the base endpoint for every client.
func (s *Sim) URL() string { return s.srv.URL }

// Close stops the simulator and removes everything it started.
func (s *Sim) Close() {
	s.srv.Close()
	s.mu.Lock()
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
}

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

// Caller is the principal that signed the request.
func (s *Sim) Caller(r *http.Request) (Principal, bool) {
	m := credentialRe.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return Principal{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.users[m[1]]
	return p, ok
}

// RequestID returns a fresh request ID.
func (s *Sim) RequestID() string { return "sim-" + strconv.FormatInt(s.reqID.Add(1), 10) }

// Fault makes an operation misbehave, as AWS sometimes does.
type Fault struct {
	OnCall   int           // fail only the Nth call (1-based); 0 means every call
	Times    int           // with OnCall 0: fail this many calls, then recover (0: forever)
	Throttle bool          // ThrottlingException (JSON) / Throttling (query)
	Status   int           // a 5xx to send instead (500, 503)
	Latency  time.Duration // added before answering
	// Rate, with OnCall 0, fails this fraction of the calls (0.3: about
	// 30 %), picked by a fixed pseudo-random sequence per operation, so a
	// run fails the same calls every time; Times, if set, caps the failures.
	Rate   float64
	failed int
}

// InjectFault arms a fault on "Service.Operation", e.g. "ECS.DescribeServices".
func (s *Sim) InjectFault(op string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = &f
}

// Calls says how often an operation was called, faults included.
func (s *Sim) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// fault counts the call and decides whether it fails.
func (s *Sim) fault(op string, json bool) (*Error, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	f := s.faults[op]
	if f == nil {
		return nil, 0
	}
	fire := false
	switch {
	case f.OnCall > 0:
		fire = s.calls[op] == f.OnCall
	case f.Rate > 0:
		fire = faultChance(op, s.calls[op]) < f.Rate && (f.Times == 0 || f.failed < f.Times)
	case f.Times > 0:
		fire = f.failed < f.Times
	default:
		fire = f.Throttle || f.Status != 0
	}
	if !fire {
		return nil, f.Latency
	}
	f.failed++
	switch {
	case f.Throttle && json:
		return &Error{Status: http.StatusBadRequest, Code: "ThrottlingException", Message: "Rate exceeded"}, f.Latency
	case f.Throttle:
		return &Error{Status: http.StatusBadRequest, Code: "Throttling", Message: "Rate exceeded"}, f.Latency
	case f.Status == http.StatusServiceUnavailable:
		return &Error{Status: f.Status, Code: "ServiceUnavailable", Message: "Service is unavailable"}, f.Latency
	case f.Status != 0:
		return &Error{Status: f.Status, Code: "InternalFailure", Message: "We encountered an internal error. Please try again."}, f.Latency
	}
	return nil, f.Latency
}

// faultChance is the nth call's draw in [0, 1): splitmix64 over the
// operation's name and n, the same on every run.
func faultChance(op string, n int) float64 {
	x := uint64(14695981039346656037)
	for i := 0; i < len(op); i++ {
		x = (x ^ uint64(op[i])) * 1099511628211
	}
	x += uint64(n) * 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

func (s *Sim) serve(w http.ResponseWriter, r *http.Request) {
	if isS3(r) { // REST: routed by its signature's service, not by a target or version
		s.serveS3(w, r)
		return
	}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		s.serveJSON(w, r, target)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.writeQueryError(w, "", Errorf("MalformedQueryString", "%v", err))
		return
	}
	svc, ok := s.query[r.PostForm.Get("Version")]
	if !ok {
		s.writeQueryError(w, "", Errorf("InvalidAction", "awssim serves no query API of version %q", r.PostForm.Get("Version")))
		return
	}
	op := r.PostForm.Get("Action")
	if e, delay := s.fault(svc.Name+"."+op, false); e != nil || delay > 0 {
		time.Sleep(delay)
		if e != nil {
			s.writeQueryError(w, svc.XMLNS, e)
			return
		}
	}
	out, err := svc.Handler(r, op)
	if err != nil {
		s.writeQueryError(w, svc.XMLNS, err)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(out)
}

func (s *Sim) serveJSON(w http.ResponseWriter, r *http.Request, target string) {
	prefix, op, _ := strings.Cut(target, ".")
	svc, ok := s.json[prefix]
	if !ok {
		s.writeJSONError(w, Errorf("UnknownOperationException", "awssim serves no API %q", prefix))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.writeJSONError(w, Errorf("SerializationException", "%v", err))
		return
	}
	if e, delay := s.fault(svc.Name+"."+op, true); e != nil || delay > 0 {
		time.Sleep(delay)
		if e != nil {
			s.writeJSONError(w, e)
			return
		}
	}
	out, err := svc.Handler(r, op, body)
	if err != nil {
		s.writeJSONError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", s.RequestID())
	_ = json.NewEncoder(w).Encode(out)
}

// UnknownOperation is what a JSON service answers for an operation it lacks.
func UnknownOperation(op string) *Error {
	return Errorf("UnknownOperationException", "awssim does not implement %s", op)
}

// InvalidAction is what a query service answers for an action it lacks.
func InvalidAction(op, version string) *Error {
	return Errorf("InvalidAction", "Could not find operation %s for version %s", op, version)
}

func asError(err error) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	return &Error{Status: http.StatusInternalServerError, Code: "InternalFailure", Message: err.Error()}
}

func (s *Sim) writeJSONError(w http.ResponseWriter, err error) {
	e := asError(err)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", e.Code)
	w.Header().Set("X-Amzn-RequestId", s.RequestID())
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.Code, "message": e.Message})
}

func (s *Sim) writeQueryError(w http.ResponseWriter, _ string, err error) {
	e := asError(err)
	typ := "Sender"
	if e.Status >= 500 {
		typ = "Receiver"
	}
	type errBody struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	body := struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Error     errBody  `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}{Error: errBody{Type: typ, Code: e.Code, Message: e.Message}, RequestID: s.RequestID()}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.Status)
	_ = xml.NewEncoder(w).Encode(body)
}

// signedCaller is the principal that signed r, or the error AWS answers an
// unknown access key with on the JSON protocol.
func (s *Sim) signedCaller(r *http.Request) (Principal, error) {
	p, ok := s.Caller(r)
	if !ok {
		return Principal{}, Errorf("UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	return p, nil
}

var scopeRe = regexp.MustCompile(`Credential=[^/]+/[0-9]+/([a-z0-9-]+)/`)

// signingRegion is the region in the request's SigV4 credential scope.
func signingRegion(r *http.Request) string {
	if m := scopeRe.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1]
	}
	return "us-east-1"
}

// jsonEpoch is a timestamp as JSON 1.1 carries it: epoch seconds.
type jsonEpoch time.Time

func (t jsonEpoch) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(time.Time(t).UnixMilli())/1000, 'f', 3, 64)), nil
}

// ResponseMetadata is the query protocol's trailer.
type ResponseMetadata struct {
	RequestID string `xml:"RequestId"`
}
