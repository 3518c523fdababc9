// Email unsubscribe links (RFC 8058 one-click): the opaque, authenticated
// token in {public_url}/u/TOKEN, and the texts around it (the footer of
// every alert email, the page a GET shows). Pure: key bytes in, text out.
//
// A token is base64url (no padding, 66 characters) of 8 bytes subscriber id
// (big-endian) and 1 byte channel sealed with XChaCha20-Poly1305 under a
// subkey of the key: a 24-byte nonce (a keyed BLAKE2b hash of those 9
// bytes, so one person's token is stable), the 9 bytes encrypted, a 16-byte
// tag. Without the key it reveals nothing (not even the row id) and can be
// neither forged nor altered. Version 1 tokens (34 characters: the 9 bytes
// in clear and a 16-byte keyed BLAKE2b MAC), in mail sent before, are still
// accepted; none are made.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/model.h"

namespace tocsin {

// At least 16 bytes of secret key (the app derives one from the key file's
// hash key); the same key must verify what it made.
std::string unsubscribe_token(std::string_view key, int64_t subscriber_id, Channel channel);

struct UnsubscribeTarget {
  int64_t subscriber_id = 0;
  Channel channel = Channel::kEmail;
};
// The subscriber and channel a token names, or nullopt when it is malformed
// or its MAC does not verify (compared in constant time).
std::optional<UnsubscribeTarget> parse_unsubscribe_token(std::string_view key,
                                                         std::string_view token);

// The footer appended to an alert email's text, in `language` (en, es;
// others fall back to en): a separator line, then how to leave, with `url`.
std::string unsubscribe_footer(std::string_view language, std::string_view url);

// The HTML page of GET /u/TOKEN, in `language`: what the button does and a
// form that POSTs List-Unsubscribe=One-Click to `action` (a GET changes
// nothing: link scanners follow GETs). `done` is the page after the POST.
std::string unsubscribe_page(std::string_view language, std::string_view action, bool done);

}  // namespace tocsin
