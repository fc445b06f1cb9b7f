package httpwire

import "strconv"

// Error is a refused request: the status code to answer with and why.
// After one the connection's framing is lost: answer and close.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string {
	return "httpwire: " + strconv.Itoa(e.Status) + " " + StatusText(e.Status) + ": " + e.Reason
}

// The errors ParseRequest and BodyReader.Read return. They are values, so
// refusing a hostile request allocates nothing either.
var (
	ErrBadRequestLine     = &Error{400, "malformed request line"}
	ErrBadTarget          = &Error{400, "malformed request target"}
	ErrBareCR             = &Error{400, "bare CR"}
	ErrBareLF             = &Error{400, "line ends in LF without CR"}
	ErrEmptyLines         = &Error{400, "too many empty lines before the request line"}
	ErrBadHeader          = &Error{400, "malformed header field"}
	ErrSpaceBeforeColon   = &Error{400, "whitespace between a field name and its colon"}
	ErrObsFold            = &Error{400, "obsolete line folding"}
	ErrMissingHost        = &Error{400, "HTTP/1.1 request without Host"}
	ErrDuplicateHost      = &Error{400, "more than one Host field"}
	ErrBadHost            = &Error{400, "invalid Host field"}
	ErrDuplicateLength    = &Error{400, "more than one Content-Length"}
	ErrBadLength          = &Error{400, "invalid Content-Length"}
	ErrLengthAndChunked   = &Error{400, "both Content-Length and Transfer-Encoding"}
	ErrTransferEncoding10 = &Error{400, "Transfer-Encoding in an HTTP/1.0 request"}
	ErrChunkedNotLast     = &Error{400, "chunked is not the final transfer coding, or appears twice"}
	ErrBadChunk           = &Error{400, "malformed chunk"}
	ErrUnknownCoding      = &Error{501, "transfer coding other than chunked"}
	ErrVersion            = &Error{505, "HTTP major version other than 1"}
	ErrExpectation        = &Error{417, "expectation other than 100-continue"}
	ErrURITooLong         = &Error{414, "request line over the limit"}
	ErrHeaderTooLarge     = &Error{431, "header section over the limit"}
	ErrTooManyHeaders     = &Error{431, "more header fields than the limit"}
	ErrBodyTooLarge       = &Error{413, "body over the limit"}
)

// StatusText returns the reason phrase of the codes this stack sends.
func StatusText(code int) string {
	switch code {
	case 100:
		return "Continue"
	case 200:
		return "OK"
	case 204:
		return "No Content"
	case 206:
		return "Partial Content"
	case 301:
		return "Moved Permanently"
	case 304:
		return "Not Modified"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 412:
		return "Precondition Failed"
	case 413:
		return "Content Too Large"
	case 414:
		return "URI Too Long"
	case 416:
		return "Range Not Satisfiable"
	case 417:
		return "Expectation Failed"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Status " + strconv.Itoa(code)
}
