"""The console's words in English and Korean, and which language a request gets.

The `rb_lang` cookie (set by the switch in the header) wins; else the browser's
`Accept-Language`, best quality first; else English.
"""

from __future__ import annotations

from fastapi import Request

LANG_COOKIE = "rb_lang"
LANGUAGES = ("en", "ko")

STRINGS: dict[str, tuple[str, str]] = {
    # layout
    "app": ("ragbridge console", "ragbridge 콘솔"),
    "skip": ("Skip to content", "본문으로 건너뛰기"),
    "nav": ("Main", "주 메뉴"),
    "collections": ("Collections", "컬렉션"),
    "search": ("Search", "검색"),
    "chat": ("Chat", "채팅"),
    "keys": ("Keys", "API 키"),
    "status": ("Status", "상태"),
    "language": ("Language", "언어"),
    "logout": ("Log out", "로그아웃"),
    "signed_in_as": ("Signed in as", "로그인:"),
    # login
    "login": ("Log in", "로그인"),
    "login_intro": (
        "This server requires an API key. Enter the admin key or a key made with "
        "`ragbridge keys create`.",
        "이 서버는 API 키가 필요합니다. 관리자 키 또는 `ragbridge keys create`로 만든 키를 "
        "입력하세요.",
    ),
    "api_key": ("API key", "API 키"),
    "login_failed": ("That key is not valid.", "유효하지 않은 키입니다."),
    # collections
    "name": ("Name", "이름"),
    "documents": ("Documents", "문서"),
    "chunks": ("Chunks", "청크"),
    "embedding_model": ("Embedding model", "임베딩 모델"),
    "size": ("Vector size", "벡터 크기"),
    "updated": ("Last update", "최근 변경"),
    "model_id": ("Model id for Open WebUI", "Open WebUI 모델 ID"),
    "copy": ("Copy", "복사"),
    "copied": ("Copied", "복사됨"),
    "delete": ("Delete", "삭제"),
    "create": ("Create", "만들기"),
    "new_collection": ("New collection", "새 컬렉션"),
    "name_hint": ("Letters, digits, _ . - (at most 64)", "글자, 숫자, _ . - (최대 64자)"),
    "no_collections": ("No collections yet.", "아직 컬렉션이 없습니다."),
    "confirm_delete": ("Delete {what}?", "{what}을(를) 삭제할까요?"),
    "confirm_collection": (
        "The collection and all its documents, chunks and vectors are deleted. This cannot be "
        "undone.",
        "컬렉션과 그 안의 모든 문서, 청크, 벡터가 삭제됩니다. 되돌릴 수 없습니다.",
    ),
    "confirm_document": (
        "The document with its chunks and vectors is deleted.",
        "문서와 그 청크, 벡터가 삭제됩니다.",
    ),
    "cancel": ("Cancel", "취소"),
    "created": ("Created", "생성됨"),
    # documents
    "upload": ("Upload documents", "문서 업로드"),
    "drop_here": (
        "Drop files here, or choose them (any number at once)",
        "파일을 여기로 끌어 놓거나 선택하세요 (여러 개 가능)",
    ),
    "choose_files": ("Choose files", "파일 선택"),
    "format": ("Format", "형식"),
    "title": ("Title", "문서 제목"),
    "pages": ("Pages", "페이지"),
    "added_at": ("Added", "추가"),
    "updated_at": ("Updated", "변경"),
    "no_documents": ("No documents yet.", "아직 문서가 없습니다."),
    "page_of": ("Page {page} of {pages}", "{pages}쪽 중 {page}쪽"),
    "previous": ("Previous", "이전"),
    "next": ("Next", "다음"),
    "status_added": ("added", "추가됨"),
    "status_updated": ("updated", "갱신됨"),
    "status_unchanged": ("unchanged", "변경 없음"),
    "status_failed": ("failed", "실패"),
    "status_uploading": ("uploading", "업로드 중"),
    "chunk": ("Chunk", "청크"),
    "page": ("Page", "페이지"),
    "headings": ("Headings", "제목"),
    "source": ("Source", "출처"),
    "back_to": ("Back to {what}", "{what}(으)로 돌아가기"),
    "read_only": (
        "This key can read this collection but not change it.",
        "이 키는 이 컬렉션을 읽을 수 있지만 변경할 수는 없습니다.",
    ),
    # search
    "collection": ("Collection", "컬렉션"),
    "query": ("Query", "질의"),
    "mode": ("Mode", "방식"),
    "mode_hybrid": ("Hybrid", "하이브리드"),
    "mode_keyword": ("Keyword", "키워드"),
    "mode_dense": ("Dense", "벡터"),
    "top_k": ("Results", "결과 수"),
    "filter_name": ("Document name (filter)", "문서 이름 (필터)"),
    "filter_page": ("Page (filter)", "페이지 (필터)"),
    "score_keyword": ("keyword", "키워드"),
    "score_dense": ("dense", "벡터"),
    "score_fused": ("fused", "결합"),
    "took": ("Results: {count} · {ms} ms", "결과 {count}개 · {ms} ms"),
    "no_hits": ("Nothing found.", "찾은 결과가 없습니다."),
    "open_passage": ("Open passage", "본문 보기"),
    # chat
    "model": ("Model", "모델"),
    "message": ("Message", "메시지"),
    "send": ("Send", "보내기"),
    "answer": ("Answer", "답변"),
    "citations": ("Citations", "인용"),
    "inspect": ("What was retrieved and sent upstream", "검색된 내용과 업스트림 프롬프트"),
    "retrieved": ("Retrieved passages", "검색된 구절"),
    "prompt": ("Prompt sent upstream", "업스트림으로 보낸 프롬프트"),
    "extractive": (
        "No upstream LLM: the answer quotes the passages (extractive).",
        "업스트림 LLM 없음: 답변은 구절을 인용합니다 (추출식).",
    ),
    "models_unavailable": (
        "The upstream model list is unavailable: {reason}",
        "업스트림 모델 목록을 가져올 수 없습니다: {reason}",
    ),
    # keys
    "new_key": ("New key", "새 키"),
    "scopes": ("Collections (none checked: all)", "컬렉션 (선택 없음: 전체)"),
    "rpm": ("Requests per minute", "분당 요청 수"),
    "tpm": ("Tokens per minute", "분당 토큰 수"),
    "all": ("all", "전체"),
    "unlimited": ("unlimited", "무제한"),
    "revoke": ("Revoke", "폐기"),
    "revoked": ("revoked", "폐기됨"),
    "live": ("live", "사용 중"),
    "key_once": (
        "Copy this key now: it is not shown again.",
        "지금 이 키를 복사하세요. 다시 표시되지 않습니다.",
    ),
    "confirm_key": (
        "Requests with this key are refused from now on.",
        "이제부터 이 키로 보낸 요청은 거부됩니다.",
    ),
    "no_keys": ("No keys yet.", "아직 키가 없습니다."),
    # status
    "health": ("Health", "상태 점검"),
    "store": ("Store", "저장소"),
    "embedder": ("Embedder", "임베더"),
    "upstream": ("Upstream LLM", "업스트림 LLM"),
    "redis": ("Redis", "Redis"),
    "not_configured": ("not configured", "설정 안 됨"),
    "traffic": ("Traffic (since start)", "트래픽 (시작 이후)"),
    "requests": ("Requests", "요청"),
    "errors": ("Errors (5xx / 4xx)", "오류 (5xx / 4xx)"),
    "tokens": ("Tokens (prompt / completion)", "토큰 (프롬프트 / 응답)"),
    "latency": ("Latency p50 / p95", "지연 p50 / p95"),
    "version": ("Version", "버전"),
    "settings": ("Effective settings", "적용된 설정"),
    "setting": ("Setting", "설정"),
    "value": ("Value", "값"),
    # errors
    "error": ("Error", "오류"),
    "not_found": ("Not found.", "찾을 수 없습니다."),
    "forbidden": ("This takes the admin key.", "관리자 키가 필요합니다."),
    "refused_foreign_host": (
        "Refused: this server only answers to its loopback name.",
        "거부됨: 이 서버는 루프백 주소로만 접속할 수 있습니다.",
    ),
    "refused_cross_site": (
        "Refused: a request from another site may not change anything here.",
        "거부됨: 다른 사이트에서 온 요청은 변경할 수 없습니다.",
    ),
    "refused_csrf": (
        "Refused: the form expired or was not sent by this console. Reload the page.",
        "거부됨: 폼이 만료되었거나 이 콘솔에서 보낸 것이 아닙니다. 새로 고치세요.",
    ),
}


def pick_language(request: Request) -> str:
    """`ko` or `en`: the cookie, else the best `Accept-Language` match, else `en`."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(request.headers.get("accept-language", "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else "en"


class Translator:
    """`t("key", what=...)`: the string in one language, formatted."""

    def __init__(self, language: str) -> None:
        self.language = language
        self._index = LANGUAGES.index(language)

    def __call__(self, key: str, **values: object) -> str:
        pair = STRINGS.get(key)
        text = pair[self._index] if pair else key
        return text.format(**values) if values else text
