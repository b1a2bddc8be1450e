package event

// DecodeFast exposes the scan of DecodeBytes, so tests can tell it took a body.
var DecodeFast = decodeFast
