// The chat page: sign in, conversations, turns that sharpen as they render, follow-ups,
// branches and a gallery. Plain ES modules, no build step; the DOM is the only framework.
//
// This entry only wires the modules together. Each owns its state and exports functions:
//   session.js  the key, the API client, sign-in and sign-out, errors in plain words
//   sidebar.js  the account's conversations
//   thread.js   the open conversation, its composer and rename (turn.js draws a turn)
//   follow.js   jobs followed over Server-Sent Events
//   gallery.js  the account's images, a page at a time
//   cooldown.js the wait after a rate limit; ui.js the DOM helpers and notices
import * as gallery from "./gallery.js";
import * as session from "./session.js";
import * as thread from "./thread.js";

thread.init();
gallery.init();
session.start({ signedIn: thread.resume, signedOut: thread.close });
