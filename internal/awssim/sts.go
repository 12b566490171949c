package awssim

import (
	"encoding/xml"
	"net/http"
)

func (s *Sim) sts(r *http.Request, op string) (any, error) {
	p, ok := s.Caller(r)
	if !ok {
		return nil, &Error{Status: http.StatusForbidden, Code: "InvalidClientTokenId", Message: "The security token included in the request is invalid."}
	}
	switch op {
	case "GetCallerIdentity":
		type result struct {
			Arn     string `xml:"Arn"`
			UserID  string `xml:"UserId"`
			Account string `xml:"Account"`
		}
		return struct {
			XMLName  xml.Name         `xml:"https://sts.amazonaws.com/doc/2011-06-15/ GetCallerIdentityResponse"`
			Result   result           `xml:"GetCallerIdentityResult"`
			Metadata ResponseMetadata `xml:"ResponseMetadata"`
		}{Result: result{Arn: p.ARN, UserID: p.UserID, Account: p.Account}, Metadata: ResponseMetadata{RequestID: s.RequestID()}}, nil
	}
	return nil, InvalidAction(op, "2011-06-15")
}
