package httpapi

import "encoding/json"

// exampleSubmission is the contract's example body of POST /v1/requests:
// the OpenAPI document shows it, and the tests that call every route send
// it.
var exampleSubmission = json.RawMessage(`{
  "service_type": "tow",
  "location": {"lat": 41.0082, "lng": 28.9784, "address": "Fatih, İstanbul", "province": "İstanbul", "district": "Fatih"},
  "destination": {"lat": 41.05, "lng": 29.01, "address": "Servis, Şişli"},
  "vehicle": {"plate": "34ABC123", "make": "Fiat", "model": "Egea", "type": "car"},
  "policy": {"insurer": "anadolu", "policy_number": "POL-123456"},
  "contact": {"name": "Ayşe Yılmaz", "phone": "+905551112233"},
  "notes": "Left lane, hazard lights on"
}`)
