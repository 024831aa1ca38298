//! What the filesystem core needs from the service. The real client
//! implements it; tests may put a fault-injecting one in its place.

use std::future::Future;
use std::path::Path;

use crate::api::{
    ApiResult, ByteRange, DeleteStatus, ListQuery, MediaClient, MediaObject, ObjectKind, Segments,
};

pub trait Backend: Send + Sync + 'static {
    /// Every folder of the location in one answer, or `None` when the
    /// service does not answer them all at once.
    fn folder_tree(&self) -> impl Future<Output = ApiResult<Option<Vec<MediaObject>>>> + Send;
    /// Every folder directly in a folder (`None`: the root).
    fn folders_in(
        &self,
        folder: Option<&str>,
    ) -> impl Future<Output = ApiResult<Vec<MediaObject>>> + Send;
    /// Every file of the location in one answer, or `None` when the
    /// service does not answer them all at once.
    fn all_files(&self) -> impl Future<Output = ApiResult<Option<Vec<MediaObject>>>> + Send;
    /// Every file directly in a folder (`None`: the root).
    fn files_in(
        &self,
        folder: Option<&str>,
    ) -> impl Future<Output = ApiResult<Vec<MediaObject>>> + Send;
    /// Whether a folder holds anything at all, asked of the service itself.
    fn has_children(&self, folder: &str) -> impl Future<Output = ApiResult<bool>> + Send;
    fn create_folder(
        &self,
        name: &str,
        parent: Option<&str>,
    ) -> impl Future<Output = ApiResult<MediaObject>> + Send;
    /// Uploads `path` as `name`; `content_type` says its type, or `None`
    /// leaves it to be told from the bytes and the name.
    fn upload(
        &self,
        path: &Path,
        name: &str,
        parent: Option<&str>,
        content_type: Option<&str>,
    ) -> impl Future<Output = ApiResult<MediaObject>> + Send;
    fn rename(&self, id: &str, name: &str) -> impl Future<Output = ApiResult<()>> + Send;
    fn remove(&self, id: &str, status: DeleteStatus) -> impl Future<Output = ApiResult<()>> + Send;
    fn read_range(
        &self,
        url: &str,
        range: ByteRange,
    ) -> impl Future<Output = ApiResult<Segments>> + Send;
}

impl Backend for MediaClient {
    async fn folder_tree(&self) -> ApiResult<Option<Vec<MediaObject>>> {
        self.at_once(ObjectKind::Folder).await
    }

    async fn folders_in(&self, folder: Option<&str>) -> ApiResult<Vec<MediaObject>> {
        self.list_all(ListQuery::children(
            ObjectKind::Folder,
            folder,
            self.config().page_size,
        ))
        .await
    }

    async fn all_files(&self) -> ApiResult<Option<Vec<MediaObject>>> {
        self.at_once(ObjectKind::File).await
    }

    async fn files_in(&self, folder: Option<&str>) -> ApiResult<Vec<MediaObject>> {
        self.list_all(ListQuery::children(
            ObjectKind::File,
            folder,
            self.config().page_size,
        ))
        .await
    }

    async fn has_children(&self, folder: &str) -> ApiResult<bool> {
        let one = |kind| {
            let mut q = ListQuery::children(kind, Some(folder), 1);
            q.limit = 1;
            q
        };
        let (folder_query, file_query) = (one(ObjectKind::Folder), one(ObjectKind::File));
        let (folders, files) =
            tokio::try_join!(self.list_page(&folder_query), self.list_page(&file_query))?;
        Ok(!folders.files.is_empty() || !files.files.is_empty())
    }

    async fn create_folder(&self, name: &str, parent: Option<&str>) -> ApiResult<MediaObject> {
        MediaClient::create_folder(self, name, parent).await
    }

    async fn upload(
        &self,
        path: &Path,
        name: &str,
        parent: Option<&str>,
        content_type: Option<&str>,
    ) -> ApiResult<MediaObject> {
        self.upload_file_as(path, name, parent, content_type).await
    }

    async fn rename(&self, id: &str, name: &str) -> ApiResult<()> {
        MediaClient::rename(self, id, name).await
    }

    async fn remove(&self, id: &str, status: DeleteStatus) -> ApiResult<()> {
        self.delete_many(&[id.to_owned()], status).await
    }

    async fn read_range(&self, url: &str, range: ByteRange) -> ApiResult<Segments> {
        MediaClient::read_range(self, url, range).await
    }
}
