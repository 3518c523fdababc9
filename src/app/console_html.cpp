// The console's page layout, its texts in English and Spanish, its security
// headers, and the QR code (libqrencode) of an enrolment's otpauth:// URI.
#include <qrencode.h>

#include <map>

#include "app/console_impl.h"

namespace tocsin::app::console {

namespace {

struct Text {
  const char* en;
  const char* es;
};

const std::map<std::string_view, Text>& texts() {
  static const std::map<std::string_view, Text> t = {
      {"title", {"tocsin console", "consola tocsin"}},
      {"login", {"Log in", "Iniciar sesión"}},
      {"logout", {"Log out", "Cerrar sesión"}},
      {"logout_all", {"Log out everywhere", "Cerrar sesión en todas partes"}},
      {"logged_out", {"You are logged out.", "Ha cerrado la sesión."}},
      {"name", {"Name", "Nombre"}},
      {"passphrase", {"Passphrase", "Frase de contraseña"}},
      {"passphrase_new", {"New passphrase (at least 12 characters)", "Nueva frase de contraseña (al menos 12 caracteres)"}},
      {"passphrase_again", {"The same passphrase again", "La misma frase otra vez"}},
      {"passphrase_rule", {"The passphrase must have at least 12 characters, typed the same twice.", "La frase debe tener al menos 12 caracteres, escrita igual dos veces."}},
      {"code", {"6-digit code from your authenticator app", "Código de 6 dígitos de su aplicación de autenticación"}},
      {"code_wrong", {"That code is not right. Check the time on your phone and try the next code.", "Ese código no es correcto. Revise la hora de su teléfono y pruebe el siguiente código."}},
      {"login_failed", {"Wrong name, passphrase or code.", "Nombre, frase o código incorrectos."}},
      {"throttled", {"Too many failed logins. Try again in", "Demasiados intentos fallidos. Inténtelo de nuevo en"}},
      {"busy", {"The server is busy; try again in a few seconds.", "El servidor está ocupado; inténtelo en unos segundos."}},
      {"session_expired", {"Your session has ended. Log in again.", "Su sesión terminó. Inicie sesión de nuevo."}},
      {"enrol", {"Set up your account", "Configurar su cuenta"}},
      {"enrol_intro", {"Scan this code with an authenticator app (or type the secret), choose a passphrase, and enter the app's current code.", "Escanee este código con una aplicación de autenticación (o escriba el secreto), elija una frase y escriba el código actual."}},
      {"totp_secret", {"Secret:", "Secreto:"}},
      {"enrol_submit", {"Finish set-up", "Terminar"}},
      {"enrol_invalid", {"This enrolment link is not valid (used, expired or reset). Ask an administrator for a new one.", "Este enlace no es válido (usado, vencido o reiniciado). Pida uno nuevo a un administrador."}},
      {"enrolled", {"Your account is ready. You can log in now.", "Su cuenta está lista. Ya puede iniciar sesión."}},
      {"forbidden", {"Refused", "Rechazado"}},
      {"cross_site", {"This request did not come from a console page, or its form is stale. Reload the page and try again.", "Esta solicitud no vino de una página de la consola o el formulario es viejo. Recargue la página."}},
      {"not_found", {"Not found", "No encontrado"}},
      {"out_of_scope", {"This is outside your areas.", "Esto está fuera de sus áreas."}},
      {"board", {"Incidents", "Incidentes"}},
      {"new_report", {"New report", "Nuevo reporte"}},
      {"no_incidents", {"No open incidents in your areas.", "No hay incidentes abiertos en sus áreas."}},
      {"drafts", {"Drafts waiting for approval", "Borradores esperando aprobación"}},
      {"draft_late", {"WAITING TOO LONG", "ESPERANDO DEMASIADO"}},
      {"incident", {"Incident", "Incidente"}},
      {"event", {"Event", "Evento"}},
      {"severity", {"Severity", "Gravedad"}},
      {"area", {"Area", "Área"}},
      {"opened", {"Opened", "Abierto"}},
      {"reports", {"Reports", "Reportes"}},
      {"progress", {"Progress", "Progreso"}},
      {"channel", {"Channel", "Canal"}},
      {"planned", {"planned", "planeados"}},
      {"sent", {"sent", "enviados"}},
      {"delivered", {"delivered", "entregados"}},
      {"failed", {"failed", "fallidos"}},
      {"expired", {"expired", "vencidos"}},
      {"acks", {"Acknowledgements", "Respuestas"}},
      {"responding", {"responding", "acudiendo"}},
      {"reply", {"other replies", "otras respuestas"}},
      {"timeline", {"Timeline", "Cronología"}},
      {"update", {"Send an update", "Enviar actualización"}},
      {"all_clear", {"Send the all-clear", "Enviar fin de alerta"}},
      {"retry", {"Retry failed", "Reintentar fallidos"}},
      {"retried", {"Failed and expired messages are queued again:", "Mensajes fallidos y vencidos en cola de nuevo:"}},
      {"drill", {"DRILL", "SIMULACRO"}},
      {"drill_banner", {"DRILL: this is an exercise or a test, not a real alert", "SIMULACRO: esto es un ejercicio o una prueba, no una alerta real"}},
      {"msg_type", {"Kind", "Tipo"}},
      {"alert", {"Alert", "Alerta"}},
      {"cancel", {"All-clear", "Fin de alerta"}},
      {"status", {"Actual or drill", "Real o simulacro"}},
      {"actual", {"Actual (real)", "Real"}},
      {"exercise", {"Exercise (drill)", "Ejercicio (simulacro)"}},
      {"test", {"Test (drill)", "Prueba (simulacro)"}},
      {"location", {"Location", "Ubicación"}},
      {"lat", {"Latitude", "Latitud"}},
      {"lon", {"Longitude", "Longitud"}},
      {"loc_desc", {"Place (words)", "Lugar (palabras)"}},
      {"observed_at", {"Observed at (UTC, RFC 3339)", "Observado (UTC, RFC 3339)"}},
      {"headline", {"Headline", "Titular"}},
      {"instruction", {"Instruction", "Instrucción"}},
      {"references", {"Incident", "Incidente"}},
      {"preview", {"Preview", "Vista previa"}},
      {"preview_hint", {"The messages as subscribers will see them, and who would get them, appear here while you type.", "Aquí aparecen, mientras escribe, los mensajes como los verán y quién los recibiría."}},
      {"send", {"Send", "Enviar"}},
      {"send_draft", {"Send for approval", "Enviar para aprobación"}},
      {"two_person_note", {"Your hotline uses the two-person rule: a second person approves this alert before it goes out.", "Su línea usa la regla de dos personas: otra persona aprueba esta alerta antes de enviarla."}},
      {"confirm_all_clear", {"I confirm: send the all-clear to the people this incident reached:", "Confirmo: enviar el fin de alerta a las personas que recibieron este incidente:"}},
      {"must_confirm", {"Tick the confirmation box to send the all-clear.", "Marque la casilla de confirmación para enviar el fin de alerta."}},
      {"accepted", {"Sent.", "Enviado."}},
      {"draft_saved", {"Saved as a draft. A second person must approve it before it goes out.", "Guardado como borrador. Otra persona debe aprobarlo antes de enviarlo."}},
      {"draft", {"Draft", "Borrador"}},
      {"author", {"Author", "Autor"}},
      {"approve", {"Approve and send", "Aprobar y enviar"}},
      {"reject", {"Reject", "Rechazar"}},
      {"own_draft", {"You wrote this draft: a second person must approve it.", "Usted escribió este borrador: otra persona debe aprobarlo."}},
      {"draft_decided", {"This draft was already decided.", "Este borrador ya fue decidido."}},
      {"approved", {"Approved and sent.", "Aprobado y enviado."}},
      {"rejected", {"Rejected; nothing was sent.", "Rechazado; no se envió nada."}},
      {"not_allowed", {"Your role may not do this.", "Su rol no permite esto."}},
      {"recipients", {"Recipients", "Destinatarios"}},
      {"nobody", {"nobody", "nadie"}},
      {"per_group", {"Recipients per group", "Destinatarios por grupo"}},
      {"group", {"Group", "Grupo"}},
      {"held", {"held", "retenido"}},
      {"would_merge", {"This would merge into open incident", "Esto se uniría al incidente abierto"}},
      {"segments", {"segment(s)", "segmento(s)"}},
      {"problems", {"Please fix:", "Corrija:"}},
      {"language", {"Español", "English"}},
      {"skip", {"Skip to content", "Saltar al contenido"}},
      {"open", {"Open", "Abrir"}},
      {"live", {"Updates live.", "Se actualiza en vivo."}},
      {"as", {"Logged in as", "Sesión de"}},
      {"admin", {"Admin", "Administración"}},
      {"admin_subscribers", {"Subscribers", "Suscriptores"}},
      {"admin_users", {"Console users", "Usuarios de la consola"}},
      {"admin_audit", {"Audit log", "Registro de auditoría"}},
      {"masked", {"Numbers, addresses and names are masked.", "Números, direcciones y nombres enmascarados."}},
      {"sub_new", {"Add a subscriber", "Añadir suscriptor"}},
      {"sub_import", {"Upload a CSV file", "Subir un archivo CSV"}},
      {"sub_detail", {"Subscriber", "Suscriptor"}},
      {"sub_name", {"Name", "Nombre"}},
      {"sub_phone", {"Phone number", "Número de teléfono"}},
      {"sub_email", {"Email address", "Correo electrónico"}},
      {"sub_language", {"Language (en, es, es-MX…)", "Idioma (en, es, es-MX…)"}},
      {"sub_lang", {"Language", "Idioma"}},
      {"sub_groups", {"Groups", "Grupos"}},
      {"sub_channels", {"Channels", "Canales"}},
      {"sub_channels_hint", {"None ticked: every channel the person has an address for.", "Ninguno marcado: todos los canales para los que la persona tiene dirección."}},
      {"sub_opted_out", {"Opted out", "Dado de baja"}},
      {"sub_added", {"Added", "Añadido"}},
      {"sub_add", {"Add", "Añadir"}},
      {"sub_save", {"Save", "Guardar"}},
      {"sub_saved", {"Saved.", "Guardado."}},
      {"sub_edit", {"Edit", "Editar"}},
      {"sub_erase", {"Erase this subscriber", "Borrar este suscriptor"}},
      {"sub_erase_confirm", {"I confirm: erase this person's data for good.", "Confirmo: borrar los datos de esta persona para siempre."}},
      {"sub_must_confirm", {"Tick the confirmation box to erase the subscriber. Nothing was erased.", "Marque la casilla de confirmación para borrar al suscriptor. No se borró nada."}},
      {"sub_erased", {"The subscriber was erased.", "El suscriptor fue borrado."}},
      {"sub_audited", {"This page shows personal data: your view of it is in the audit log.", "Esta página muestra datos personales: su consulta queda en el registro de auditoría."}},
      {"sub_nothing_stored", {"Nothing was stored.", "No se guardó nada."}},
      {"sub_csv_hint", {"First line: the columns (name, phone, email, language, groups, channels, in any order; groups and channels separated by ;). A line matching a subscriber's phone or email updates them.", "Primera línea: las columnas (name, phone, email, language, groups, channels, en cualquier orden; grupos y canales separados por ;). Una línea con el teléfono o correo de un suscriptor lo actualiza."}},
      {"sub_csv_file", {"CSV file", "Archivo CSV"}},
      {"sub_csv_text", {"The file's text (filled in from the file, or paste it here)", "El texto del archivo (se llena desde el archivo, o péguelo aquí)"}},
      {"sub_dry_run", {"Check only: store nothing", "Solo comprobar: no guardar nada"}},
      {"sub_dry_run_done", {"check only: nothing was stored", "solo comprobación: no se guardó nada"}},
      {"sub_upload", {"Upload", "Subir"}},
      {"sub_report", {"Report", "Informe"}},
      {"sub_created_n", {"created", "creados"}},
      {"sub_updated_n", {"updated", "actualizados"}},
      {"sub_unchanged_n", {"unchanged", "sin cambios"}},
      {"sub_refused_n", {"refused", "rechazados"}},
      {"sub_line", {"Line", "Línea"}},
      {"sub_field", {"Field", "Campo"}},
      {"sub_problem", {"Problem", "Problema"}},
      {"sub_too_many", {"Too many lines in one file; the most is", "Demasiadas líneas en un archivo; el máximo es"}},
  };
  return t;
}

}  // namespace

std::string tr(std::string_view lang, std::string_view key) {
  auto it = texts().find(key);
  if (it == texts().end()) return std::string(key);
  return lang == "es" ? it->second.es : it->second.en;
}

void add_security_headers(http::Response& r) {
  r.set("Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
  r.set("X-Content-Type-Options", "nosniff");
  r.set("Referrer-Policy", "no-referrer");
  r.set("Cache-Control", "no-store");
  r.set("X-Frame-Options", "DENY");
}

http::Response html_response(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.set("Content-Type", "text/html; charset=utf-8");
  r.body = std::move(body);
  return r;
}

http::Response redirect(std::string_view location) {
  http::Response r;
  r.status = 303;
  r.set("Location", std::string(location));
  return r;
}

std::string comma_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& x : items) {
    if (!out.empty()) out += ", ";
    out += x;
  }
  return out;
}

std::string channels_text(const store::Subscriber& s) {
  std::vector<std::string> names;
  for (Channel c : s.channels) names.emplace_back(to_string(c));
  return comma_list(names);
}

std::string render_page(const Page& p) {
  const std::string& l = p.lang;
  std::string h;
  h.reserve(p.body.size() + 2048);
  h += "<!doctype html><html lang=\"" + esc(l) + "\"><head><meta charset=\"utf-8\">"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
       "<title>" + esc(p.title) + " · " + T(l, "title") + "</title>"
       "<link rel=\"stylesheet\" href=\"/console/assets/app.css\">"
       "<script type=\"module\" src=\"/console/assets/app.js\"></script></head><body>";
  h += "<a class=\"skip\" href=\"#main\">" + T(l, "skip") + "</a>";
  h += "<header><nav aria-label=\"console\"><a class=\"brand\" href=\"/console/\">tocsin</a>";
  if (p.who) {
    h += "<a href=\"/console/\">" + T(l, "board") + "</a>";
    if (p.who->can_report()) h += "<a href=\"/console/reports/new\">" + T(l, "new_report") + "</a>";
    if (p.who->user.role == "admin")
      h += "<a href=\"/console/admin/subscribers\">" + T(l, "admin") + "</a>";
  }
  h += "<a href=\"/console/lang?l=" + std::string(l == "es" ? "en" : "es") + "\" lang=\"" +
       std::string(l == "es" ? "en" : "es") + "\">" + T(l, "language") + "</a>";
  if (p.who) {
    h += "<span class=\"who\">" + T(l, "as") + " " + esc(p.who->user.name) + " (" +
         esc(p.who->user.role) + ")</span>";
    h += "<form method=\"post\" action=\"/console/logout\" class=\"inline\">" + csrf_field(*p.who) +
         "<button type=\"submit\">" + T(l, "logout") + "</button></form>";
    h += "<form method=\"post\" action=\"/console/logout-all\" class=\"inline\">" +
         csrf_field(*p.who) + "<button type=\"submit\">" + T(l, "logout_all") + "</button></form>";
  }
  h += "</nav></header>";
  if (p.drill) h += "<p class=\"drill-banner\" role=\"note\">" + T(l, "drill_banner") + "</p>";
  h += "<main id=\"main\"" + std::string(p.who ? " data-csrf=\"" + esc(p.who->session.csrf) + "\"" : "") +
       ">" + p.body + "</main></body></html>";
  return h;
}

http::Response message_page(int status, const std::string& lang, const Who* who,
                            std::string_view title_key, const std::string& text) {
  Page p;
  p.lang = lang;
  p.who = who;
  p.title = tr(lang, title_key);
  p.body = "<h1>" + T(lang, title_key) + "</h1><p class=\"message\" role=\"status\">" + esc(text) +
           "</p><p><a href=\"/console/\">" + T(lang, "board") + "</a> · <a href=\"/console/login\">" +
           T(lang, "login") + "</a></p>";
  return html_response(status, render_page(p));
}

std::string qr_svg(const std::string& text) {
  QRcode* q = QRcode_encodeString(text.c_str(), 0, QR_ECLEVEL_M, QR_MODE_8, 1);
  if (!q) return {};
  const int n = q->width, border = 4, size = n + 2 * border;
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " +
                    std::to_string(size) + " " + std::to_string(size) +
                    "\" width=\"240\" height=\"240\" role=\"img\" aria-label=\"QR code\" "
                    "shape-rendering=\"crispEdges\"><rect width=\"100%\" height=\"100%\" "
                    "fill=\"#fff\"/><path fill=\"#000\" d=\"";
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x)
      if (q->data[y * n + x] & 1) {
        // Piece by piece: GCC 12 at -O3 sees a false overlap (-Wrestrict)
        // in "literal" + std::string&&.
        svg += 'M';
        svg += std::to_string(x + border);
        svg += ' ';
        svg += std::to_string(y + border);
        svg += "h1v1h-1z";
      }
  svg += "\"/></svg>";
  QRcode_free(q);
  return svg;
}

}  // namespace tocsin::app::console
