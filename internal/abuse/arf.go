package abuse

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// Sender is who mailed reports come from.
type Sender struct {
	From         mail.Address // "Abuse desk <abuse@example.org>"
	Organisation string       // X-ARF's ReporterOrg; "" : From's name, else its domain
	Version      string       // in User-Agent: "Rampart/VERSION"
}

func (s Sender) domain() string {
	return s.From.Address[strings.LastIndexByte(s.From.Address, '@')+1:]
}

func (s Sender) org() string {
	switch {
	case s.Organisation != "":
		return s.Organisation
	case len(s.From.Name) >= 3:
		return s.From.Name
	}
	return s.domain()
}

func (s Sender) userAgent() string {
	if s.Version == "" {
		return "Rampart"
	}
	return "Rampart/" + s.Version
}

// maxEvidence is the most of a trapped message a report carries whole;
// a larger one is sent as its header only (text/rfc822-headers).
const maxEvidence = 256 << 10

// mailPart is one MIME part of a report.
type mailPart struct {
	header textproto.MIMEHeader
	body   []byte
}

// reportMail writes a multipart/report; report-type=feedback-report
// message (RFC 6522, RFC 5965): a human-readable part, the
// machine-readable feedback report, and the evidence.
func reportMail(s Sender, to, subject, id string, date time.Time, human string, feedback []string, evidence mailPart) ([]byte, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	toAddr := mail.Address{Address: to}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", s.From.String())
	fmt.Fprintf(&b, "To: %s\r\n", toAddr.String())
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", id, s.domain())
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Auto-Submitted: auto-generated\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=feedback-report; boundary=%q\r\n\r\n", mw.Boundary())
	fmt.Fprintf(&b, "This is a report in the Abuse Reporting Format (RFC 5965).\r\n")

	text, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type": {"text/plain; charset=utf-8"}, "Content-Transfer-Encoding": {"quoted-printable"}})
	if err != nil {
		return nil, err
	}
	qp := quotedprintable.NewWriter(text)
	qp.Write([]byte(strings.ReplaceAll(human, "\n", "\r\n")))
	qp.Close()
	fb, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"message/feedback-report"}, "Content-Disposition": {"inline"}})
	if err != nil {
		return nil, err
	}
	for _, line := range feedback {
		fmt.Fprintf(fb, "%s\r\n", line)
	}
	ev, err := mw.CreatePart(evidence.header)
	if err != nil {
		return nil, err
	}
	ev.Write(evidence.body)
	if err := mw.Close(); err != nil {
		return nil, err
	}
	b.Write(body.Bytes())
	return b.Bytes(), nil
}

// xarfPart is the X-ARF (version 3) JSON report as the third part.
func xarfPart(report any) (mailPart, error) {
	js, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return mailPart{}, err
	}
	enc := base64.StdEncoding.EncodeToString(js)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return mailPart{header: textproto.MIMEHeader{
		"Content-Type":              {"application/json; name=xarf.json"},
		"Content-Transfer-Encoding": {"base64"},
		"Content-Disposition":       {"attachment; filename=xarf.json"},
	}, body: []byte(b.String())}, nil
}

// messagePart is a trapped message as ARF's evidence: whole
// (message/rfc822) when it is small enough, else its header only
// (text/rfc822-headers). The message has been redacted.
func messagePart(raw []byte) mailPart {
	if len(raw) <= maxEvidence {
		return mailPart{header: textproto.MIMEHeader{"Content-Type": {"message/rfc822"}, "Content-Disposition": {"inline"}}, body: raw}
	}
	head := raw
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		head = raw[:i+2]
	}
	if len(head) > maxEvidence {
		head = head[:maxEvidence]
	}
	return mailPart{header: textproto.MIMEHeader{"Content-Type": {"text/rfc822-headers"}, "Content-Disposition": {"inline"}}, body: head}
}

// xarfReporter is X-ARF's ReporterInfo.
type xarfReporter struct {
	ReporterOrg       string `json:"ReporterOrg"`
	ReporterOrgDomain string `json:"ReporterOrgDomain"`
	ReporterOrgEmail  string `json:"ReporterOrgEmail"`
}

// xarfReport is an X-ARF version 3 report of an activity (LoginAttack,
// PortScan, Spam).
type xarfReport struct {
	Version      string       `json:"Version"`
	ReporterInfo xarfReporter `json:"ReporterInfo"`
	Disclosure   bool         `json:"Disclosure"`
	Report       xarfActivity `json:"Report"`
}

type xarfActivity struct {
	ReportClass     string       `json:"ReportClass"`
	ReportType      string       `json:"ReportType"`
	ReportSubType   string       `json:"ReportSubType,omitempty"`
	Date            string       `json:"Date"`
	FirstSeen       string       `json:"FirstSeen,omitempty"`
	SourceIp        string       `json:"SourceIp"`
	DestinationPort int          `json:"DestinationPort,omitempty"`
	Service         string       `json:"-"`
	Ongoing         bool         `json:"Ongoing"`
	Samples         []xarfSample `json:"Samples,omitempty"`
}

type xarfSample struct {
	ContentType   string `json:"ContentType"`
	Base64Encoded bool   `json:"Base64Encoded"`
	Description   string `json:"Description"`
	Payload       string `json:"Payload"`
}
