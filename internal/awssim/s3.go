package awssim

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// S3 over its REST protocol, path-style (what SDKs use against an endpoint
// override), as far as vmctl goes: the account's template bucket, where a
// CloudFormation template too large to send inline is staged, and the
// objects CloudFormation reads back through TemplateURL. Buckets belong to
// the account that made them; every other operation is refused.

type s3State struct {
	mu      sync.Mutex
	buckets map[string]*s3Bucket
}

type s3Bucket struct {
	name, account, region string
	created               time.Time
	publicAccessBlock     []byte // the configuration as sent
	lifecycle             []byte
	objects               map[string][]byte
}

var s3ScopeRe = regexp.MustCompile(`Credential=[^/]+/\d{8}/[^/]+/s3/`)

// isS3 says whether a request is signed for S3.
func isS3(r *http.Request) bool { return s3ScopeRe.MatchString(r.Header.Get("Authorization")) }

type s3Error struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
}

func (s *Sim) writeS3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-amz-request-id", s.RequestID())
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return // HEAD answers carry no body
	}
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(s3Error{Code: code, Message: msg, Resource: r.URL.Path, RequestID: s.RequestID()})
}

func (s *Sim) serveS3(w http.ResponseWriter, r *http.Request) {
	p, ok := s.Caller(r)
	if !ok {
		s.writeS3Error(w, r, http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
		return
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	q.Del("x-id") // the SDK names the operation there; the method and path decide it
	op := s3Operation(r.Method, bucket, key, q)
	if e, delay := s.fault("S3."+op, false); e != nil || delay > 0 {
		time.Sleep(delay)
		if e != nil {
			s.writeS3Error(w, r, e.Status, e.Code, e.Message)
			return
		}
	}
	body, err := s3Body(r)
	if err != nil {
		s.writeS3Error(w, r, http.StatusBadRequest, "IncompleteBody", err.Error())
		return
	}
	st := s.s3
	st.mu.Lock()
	defer st.mu.Unlock()
	b := st.buckets[bucket]
	if op != "CreateBucket" && bucket != "" && (b == nil || b.account != p.Account) {
		// Another account's bucket is as good as absent to the caller here.
		s.writeS3Error(w, r, http.StatusNotFound, map[bool]string{true: "NotFound", false: "NoSuchBucket"}[r.Method == http.MethodHead], "The specified bucket does not exist")
		return
	}
	w.Header().Set("x-amz-request-id", s.RequestID())
	switch op {
	case "HeadBucket":
		w.Header().Set("x-amz-bucket-region", b.region)
		w.WriteHeader(http.StatusOK)
	case "CreateBucket":
		if b != nil {
			code := "BucketAlreadyExists"
			if b.account == p.Account {
				code = "BucketAlreadyOwnedByYou"
			}
			s.writeS3Error(w, r, http.StatusConflict, code, "The requested bucket name is not available.")
			return
		}
		var conf struct {
			LocationConstraint string `xml:"LocationConstraint"`
		}
		if len(bytes.TrimSpace(body)) > 0 {
			if err := xml.Unmarshal(body, &conf); err != nil {
				s.writeS3Error(w, r, http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema.")
				return
			}
		}
		region := signingRegion(r)
		if conf.LocationConstraint == "" && region != "us-east-1" || conf.LocationConstraint != "" && conf.LocationConstraint != region {
			s.writeS3Error(w, r, http.StatusBadRequest, "IllegalLocationConstraintException", "The "+cmpOr(conf.LocationConstraint, "unspecified")+" location constraint is incompatible for the region specific endpoint this request was sent to.")
			return
		}
		st.buckets[bucket] = &s3Bucket{name: bucket, account: p.Account, region: region, created: time.Now(), objects: map[string][]byte{}}
		w.Header().Set("Location", "/"+bucket)
		w.WriteHeader(http.StatusOK)
	case "PutPublicAccessBlock":
		b.publicAccessBlock = body
		w.WriteHeader(http.StatusOK)
	case "PutBucketLifecycleConfiguration":
		b.lifecycle = body
		w.WriteHeader(http.StatusOK)
	case "PutObject":
		b.objects[key] = body
		sum := md5.Sum(body)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		w.WriteHeader(http.StatusOK)
	case "GetObject":
		obj, ok := b.objects[key]
		if !ok {
			s.writeS3Error(w, r, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(obj)))
		_, _ = w.Write(obj)
	default:
		s.writeS3Error(w, r, http.StatusNotImplemented, "NotImplemented", "awssim does not implement this S3 operation ("+r.Method+" "+r.URL.RequestURI()+")")
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// s3Operation names a REST request as the S3 API does.
func s3Operation(method, bucket, key string, q url.Values) string {
	switch {
	case bucket == "":
		return "Unknown"
	case key == "" && method == http.MethodHead:
		return "HeadBucket"
	case key == "" && method == http.MethodPut && len(q) == 0:
		return "CreateBucket"
	case key == "" && method == http.MethodPut && q.Has("publicAccessBlock"):
		return "PutPublicAccessBlock"
	case key == "" && method == http.MethodPut && q.Has("lifecycle"):
		return "PutBucketLifecycleConfiguration"
	case key != "" && method == http.MethodPut && len(q) == 0:
		return "PutObject"
	case key != "" && method == http.MethodGet && len(q) == 0:
		return "GetObject"
	}
	return "Unknown"
}

// s3Body reads a request's payload, decoding aws-chunked encoding (what
// SDKs send with a trailing checksum).
func s3Body(r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
		return raw, nil
	}
	var out []byte
	br := bufio.NewReader(bytes.NewReader(raw))
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		sizeHex, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil // trailers follow: the checksum, not checked here
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return nil, err
		}
		out = append(out, chunk...)
		if _, err := br.ReadString('\n'); err != nil { // the chunk's CRLF
			return nil, err
		}
	}
}

// s3Object reads an object for CloudFormation's TemplateURL, in the
// virtual-hosted (https://BUCKET.s3.REGION.amazonaws.com/KEY) or path
// (https://s3.REGION.amazonaws.com/BUCKET/KEY) form, as the account sees it.
func (s *Sim) s3Object(account, rawURL string) ([]byte, bool) {
	u, err := url.Parse(rawURL)
	if err != nil || !strings.HasSuffix(u.Host, ".amazonaws.com") {
		return nil, false
	}
	bucket, key := "", strings.TrimPrefix(u.Path, "/")
	if i := strings.Index(u.Host, ".s3."); i > 0 {
		bucket = u.Host[:i]
	} else if i := strings.Index(u.Host, ".s3-"); i > 0 {
		bucket = u.Host[:i]
	} else {
		bucket, key, _ = strings.Cut(key, "/")
	}
	s.s3.mu.Lock()
	defer s.s3.mu.Unlock()
	b := s.s3.buckets[bucket]
	if b == nil || b.account != account {
		return nil, false
	}
	obj, ok := b.objects[key]
	return obj, ok
}
