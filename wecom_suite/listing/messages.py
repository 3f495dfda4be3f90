"""What each finding says, in English and Chinese: (what is wrong, what is expected)."""

from __future__ import annotations

Messages = dict[str, tuple[str, str]]

EN: Messages = {
    "key.unknown": ("unknown key (a typo?)", "only the keys of `wecom-suite listing init`"),
    "key.missing": ("required key is missing", "this key with a value"),
    "key.type": ("wrong type of value", "{type}"),
    "text.length": ("{count} characters", "{min}–{max} characters"),
    "text.length.at_least": ("{count} characters", "at least {min} character(s)"),
    "text.special_chars": ("special characters: {chars}", "letters, digits and spaces only"),
    "text.banned_word": ("banned word: {words}", "no banned or exaggerating words"),
    "file.missing": ("file not found: {path}", "an existing file, relative to the listing"),
    "image.corrupt": ("not a readable image: {path}", "a complete JPEG or PNG file"),
    "image.format": ("image content is {format}", "JPEG or PNG content"),
    "image.extension": (
        "content is {format} but the name ends in {suffix}",
        "a name ending in {expected}",
    ),
    "image.square": ("{width}×{height} px is not square", "a square image, 750×750 px"),
    "image.dimensions": (
        "{width}×{height} px",
        "exactly {expected_width}×{expected_height} px",
    ),
    "image.bytes": ("{bytes} bytes", "at most {max_bytes} bytes"),
    "screenshots.count": ("{count} screenshot(s)", "{min}–{max} screenshots"),
    "domain.scheme": ("{value} has a scheme", "a bare domain, without http:// or https://"),
    "domain.path": ("{value} has a path", "a bare domain, without / ? #"),
    "domain.port": ("{value} has a port", "a bare domain, without :port"),
    "domain.ip": ("{value} is an IP address", "a domain name (ICP-filed)"),
    "domain.label": ("{value} is not a valid domain", "labels of a-z 0-9 -, e.g. app.example.com"),
    "url.syntax": ("{value} is not an absolute URL", "https://host/path"),
    "url.https": ("{value} does not use https", "a URL starting with https://"),
    "ip.invalid": ("{value} is not an IP address", "an IPv4 or IPv6 address"),
    "ip.not_public": ("{value} is not a public address", "the public IP your server calls from"),
    "callback.verification.timeout": (
        "URL verification of {url} timed out",
        "an answer within 1 s",
    ),
    "callback.verification.connect": (
        "could not connect to {host}:{port} for {url} ({reason})",
        "a server listening at that address and port, reachable from the internet",
    ),
    "callback.verification.dns": (
        "could not resolve the host name {host} of {url}",
        "a domain name with a DNS record",
    ),
    "callback.verification.certificate": (
        "certificate not valid for {host} ({reason})",
        "a certificate from a public CA that names this host and has not expired",
    ),
    "callback.verification.tls": (
        "the TLS handshake with {host} failed for {url}",
        "https with a current TLS version and certificate",
    ),
    "callback.verification.disconnected": (
        "{url} closed the connection without answering",
        "an HTTP answer to the verification request",
    ),
    "callback.verification.url": (
        "{url} is not a URL that can be requested",
        "https://domain/path",
    ),
    "callback.verification.error": (
        "URL verification of {url} failed: the answer could not be read ({error})",
        "a well-formed HTTP answer",
    ),
    "callback.verification.status": (
        "URL verification of {url} got HTTP {status}",
        "HTTP 200 with the decrypted echostr (check Token and EncodingAESKey)",
    ),
    "callback.verification.body": (
        "URL verification of {url} answered {body!r}",
        "exactly the decrypted echostr",
    ),
    "business_settings.credentials": (
        "{value} cannot sign admins in: no provider credentials in this environment",
        "{variables} set where the gateway runs (service/get_login_info needs the provider token)",
    ),
}

ZH: Messages = {
    "key.unknown": ("未知字段（拼写错误？）", "仅限 `wecom-suite listing init` 模板中的字段"),
    "key.missing": ("缺少必填字段", "填写该字段"),
    "key.type": ("取值类型错误", "{type}"),
    "text.length": ("{count} 个字", "{min}–{max} 个字"),
    "text.length.at_least": ("{count} 个字", "至少 {min} 个字"),
    "text.special_chars": ("含特殊字符：{chars}", "只用文字、数字和空格"),
    "text.banned_word": ("含违禁词：{words}", "不含违禁词或夸大用语"),
    "file.missing": ("找不到文件：{path}", "存在的文件（相对于清单文件）"),
    "image.corrupt": ("图片无法读取：{path}", "完整的 JPEG 或 PNG 文件"),
    "image.format": ("图片内容为 {format}", "JPEG 或 PNG"),
    "image.extension": ("内容为 {format}，扩展名却是 {suffix}", "扩展名 {expected}"),
    "image.square": ("{width}×{height} 像素，不是正方形", "正方形，750×750 像素"),
    "image.dimensions": ("{width}×{height} 像素", "恰好 {expected_width}×{expected_height} 像素"),
    "image.bytes": ("{bytes} 字节", "不超过 {max_bytes} 字节"),
    "screenshots.count": ("{count} 张截图", "{min}–{max} 张截图"),
    "domain.scheme": ("{value} 带有协议头", "不带 http:// 或 https:// 的域名"),
    "domain.path": ("{value} 带有路径", "不带 / ? # 的域名"),
    "domain.port": ("{value} 带有端口", "不带端口的域名"),
    "domain.ip": ("{value} 是 IP 地址", "已备案的域名"),
    "domain.label": ("{value} 不是合法域名", "由 a-z 0-9 - 组成的域名，如 app.example.com"),
    "url.syntax": ("{value} 不是完整的 URL", "https://域名/路径"),
    "url.https": ("{value} 未使用 https", "以 https:// 开头的 URL"),
    "ip.invalid": ("{value} 不是 IP 地址", "IPv4 或 IPv6 地址"),
    "ip.not_public": ("{value} 不是公网地址", "服务器调用接口所用的公网 IP"),
    "callback.verification.timeout": ("{url} 的 URL 验证超时", "1 秒内应答"),
    "callback.verification.connect": (
        "无法连接 {host}:{port}（{url}，{reason}）",
        "该地址和端口上有服务在监听，且可从公网访问",
    ),
    "callback.verification.dns": ("无法解析 {url} 的域名 {host}", "有 DNS 解析记录的域名"),
    "callback.verification.certificate": (
        "{host} 的证书无效（{reason}）",
        "由公共 CA 签发、包含该域名且未过期的证书",
    ),
    "callback.verification.tls": (
        "与 {host} 的 TLS 握手失败（{url}）",
        "https，且 TLS 版本与证书有效",
    ),
    "callback.verification.disconnected": ("{url} 未应答即关闭了连接", "对验证请求的 HTTP 应答"),
    "callback.verification.url": ("{url} 不是可访问的 URL", "https://域名/路径"),
    "callback.verification.error": (
        "{url} 的 URL 验证失败：应答无法读取（{error}）",
        "格式正确的 HTTP 应答",
    ),
    "callback.verification.status": (
        "{url} 的 URL 验证返回 HTTP {status}",
        "HTTP 200 且正文为解密后的 echostr（检查 Token 与 EncodingAESKey）",
    ),
    "callback.verification.body": ("{url} 的 URL 验证应答 {body!r}", "正文恰好为解密后的 echostr"),
    "business_settings.credentials": (
        "{value} 无法为管理员登录：当前环境没有服务商凭证",
        "在网关运行的环境中设置 {variables}（service/get_login_info 需要服务商凭证）",
    ),
}

TYPE_NAMES = {
    "en": {"text": "text", "list": "a list of text", "mapping": "a mapping (key: value)"},
    "zh": {"text": "文本", "list": "文本列表", "mapping": "键值映射"},
}

SUMMARY = {
    "en": {
        "clean": "{path}: no problems found",
        "findings": "{path}: {count} problem(s) found",
        "clean_with_warnings": "{path}: no problems found, {warnings} warning(s)",
        "findings_with_warnings": "{path}: {count} problem(s) found, {warnings} warning(s)",
        "warning": "warning",
        "verified": "✓ {field}: {url} answered the URL verification",
        "unreadable": "error: cannot read {path}: {reason}",
        "written": "wrote {path}",
        "exists": "error: {path} exists; not overwriting it",
        "expected": "expected",
    },
    "zh": {
        "clean": "{path}：未发现问题",
        "findings": "{path}：发现 {count} 个问题",
        "clean_with_warnings": "{path}：未发现问题，{warnings} 个警告",
        "findings_with_warnings": "{path}：发现 {count} 个问题，{warnings} 个警告",
        "warning": "警告",
        "verified": "✓ {field}：{url} 通过 URL 验证",
        "unreadable": "错误：无法读取 {path}：{reason}",
        "written": "已写入 {path}",
        "exists": "错误：{path} 已存在，未覆盖",
        "expected": "应为",
    },
}
